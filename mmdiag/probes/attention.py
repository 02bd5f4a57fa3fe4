"""Language-token attention dominance, first form.

For each example the LLM reads "Is there a <object> in the image?" about a scene. At the last prompt
token (where the first answer token is predicted) each layer's attention row, per head, is reduced
*inside the forward pass* to the mass on four parts that sum to 1: the BOS sink, system text before the
image, the image tokens, and the instruction after them. Only [layers, heads, 4] numbers and the
per-image-token mean are kept (never L x H x N x N). FastV's per-token efficiency ε = mass / tokens is
reported as a ratio of means. The answer's dependence on the image (|ΔP(yes)| when the image is replaced
by its mean colour) is shown beside the masses, since high mass alone does not prove use.

This first form asks the LLM for eager attention during the probe's forward; issue #5 replaces it with a
q·kᵀ recomputation for the query rows needed, so the main forward keeps SDPA.

Dual encoders: the modality gap ‖mean(normalised image emb.) − mean(normalised text emb.)‖ (Liang et
al. 2022) and the CLS token's attention over patches per vision layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter, GenerativeAdapter, PreparedBatch
from mmdiag.capture import hooks
from mmdiag.metrics.stats import bootstrap_ci, bootstrap_ci_columns
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.scenes.blind import mean_colour
from mmdiag.scenes.masks import object_patch_mask
from mmdiag.scenes.model import Scene
from mmdiag.scenes.render import render

PARTS = ("bos", "system", "image", "instruction")
QUESTION = "Is there a {name} in the image?"
CAPTION = "a photo of a {name}"


@dataclass
class AttentionResult(ProbeResult):
    """Per-layer masses with CIs, the head x layer image-mass map, and object-patch attention."""

    parts: tuple[str, ...] = PARTS
    layer_mass: dict[str, list[float]] = field(default_factory=dict)  # part -> [layers]
    layer_mass_ci: dict[str, list[list[float]]] = field(default_factory=dict)  # part -> [layers][2]
    head_image_mass: list[list[float]] = field(default_factory=list)  # [layers][heads]
    token_counts: dict[str, float] = field(default_factory=dict)  # mean tokens per part
    token_grid: list[int] | None = None
    threshold: float = 0.1


class AttentionProbe(Probe):
    """Attention mass on image vs text tokens at the answer position, per layer and head."""

    name = "attention"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_names = {
        GENERATIVE: ("mean_image_mass", "mean_bos_mass", "image_text_efficiency_ratio", "blind_answer_shift",
                     "object_attention_ratio", "image_mass_low_from_layer"),
        DUAL_ENCODER: ("modality_gap", "object_attention_ratio"),
    }

    def __init__(self, resolution: int = 64, threshold: float = 0.1, seed: int = 0) -> None:
        self.resolution = resolution
        self.threshold = threshold
        self.seed = seed

    def examples(self, scenes: list[Scene], adapter: Adapter) -> list[ProbeExample]:
        return [
            ProbeExample(f"{s.scene_id}/attention", s, {"object": s.object_names[0]})
            for s in scenes
            if s.objects
        ]

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        image = render(example.scene, self.resolution)
        if adapter.kind == DUAL_ENCODER:
            return self._run_dual(adapter, example, image)
        assert isinstance(adapter, GenerativeAdapter)
        question = QUESTION.format(name=example.inputs["object"])
        batch = adapter.prepare([image], [question])
        masses, image_token_mean, logits = _reduce_attention(adapter, batch)
        real = adapter.scores_from_logits(logits, batch)
        blind = adapter.answer_scores([mean_colour(image)], [question])
        counts = _part_counts(batch, adapter)
        values: dict[str, Any] = {
            "question": question,
            "masses": np.round(masses, 6).tolist(),  # [layers][heads][4 parts]
            "token_counts": counts,
            "image_token_attention": np.round(image_token_mean, 6).tolist(),  # mean over layers, heads
            "p_yes": float(real.p_yes_norm[0]),
            "blind_p_yes": float(blind.p_yes_norm[0]),
        }
        if batch.token_grid is not None:
            values["object_patches"] = object_patch_mask(example.scene, batch.token_grid).astype(int).tolist()
        return ExampleOutput(values)

    def _run_dual(self, adapter: Adapter, example: ProbeExample, image: Any) -> ExampleOutput:
        caption = CAPTION.format(name=" and a ".join(example.scene.object_names))
        img, txt = adapter.embeddings([image], [caption])
        values: dict[str, Any] = {"caption": caption}
        arrays = {"image_embedding": img[0].cpu().numpy(), "text_embedding": txt[0].cpu().numpy()}
        try:
            cls = adapter.cls_attention([image])[0].cpu().numpy()  # [layers, heads, patches]
        except Exception as err:  # noqa: BLE001 - some towers do not expose weights; recorded, not fatal
            values["cls_attention_unavailable"] = str(err)
        else:
            grid = adapter.vision_grid()
            values["object_patches"] = object_patch_mask(example.scene, grid).astype(int).tolist()
            values["cls_patch_attention"] = np.round(cls.mean(axis=1), 6).tolist()  # [layers][patches]
        return ExampleOutput(values, arrays)

    def aggregate(self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]) -> ProbeResult:
        if adapter.kind == DUAL_ENCODER:
            return self._aggregate_dual(records, arrays)
        masses = np.array([r["masses"] for r in records], dtype=float)  # [N, L, H, 4]
        per_layer = masses.mean(axis=2)  # [N, L, 4], head-averaged
        result = AttentionResult(probe=self.name, n_examples=len(records), n_failed=0, metrics={}, threshold=self.threshold)
        for p, part in enumerate(PARTS):
            result.layer_mass[part] = per_layer[:, :, p].mean(axis=0).tolist()
            result.layer_mass_ci[part] = bootstrap_ci_columns(per_layer[:, :, p], seed=self.seed).tolist()
        result.head_image_mass = masses[..., PARTS.index("image")].mean(axis=0).tolist()
        counts = {part: float(np.mean([r["token_counts"][part] for r in records])) for part in PARTS}
        result.token_counts = counts
        image_mass = per_layer[:, :, PARTS.index("image")]
        text_mass = per_layer[:, :, PARTS.index("system")] + per_layer[:, :, PARTS.index("instruction")]
        n_text = counts["system"] + counts["instruction"]

        def efficiency_ratio(rows: np.ndarray) -> float:
            img, txt = image_mass[rows].mean(), text_mass[rows].mean()
            return float((img / counts["image"]) / (txt / n_text)) if txt > 0 and n_text > 0 else float("nan")

        index = np.arange(len(records))
        shift = np.array([abs(r["p_yes"] - r["blind_p_yes"]) for r in records])
        low_layers = np.where(image_mass.mean(axis=0) < self.threshold)[0]
        low_from = _first_of_tail(low_layers, image_mass.shape[1])
        metrics = {
            "mean_image_mass": Metric(float(image_mass.mean()), *bootstrap_ci(image_mass.mean(axis=1), seed=self.seed),
                                      "attention mass on image tokens at the answer position, mean over layers and heads"),
            "mean_bos_mass": Metric(float(per_layer[:, :, 0].mean()), *bootstrap_ci(per_layer[:, :, 0].mean(axis=1), seed=self.seed),
                                    "mass absorbed by the BOS sink"),
            "image_text_efficiency_ratio": Metric(efficiency_ratio(index), *bootstrap_ci(index, efficiency_ratio, seed=self.seed),
                                                  "FastV per-token efficiency of image over text tokens (ratio of means)"),
            "blind_answer_shift": Metric(float(shift.mean()), *bootstrap_ci(shift, seed=self.seed),
                                         "mean |P(yes) real - P(yes) mean-colour image|"),
            "image_mass_low_from_layer": Metric(low_from, description=f"first layer after which image mass stays < {self.threshold}"),
        }
        object_ratio = _object_attention_ratio([(r["image_token_attention"], r.get("object_patches")) for r in records])
        if object_ratio is not None:
            metrics["object_attention_ratio"] = Metric(
                object_ratio, description="image attention per object patch / per background patch (1 = blind to objects)")
            result.token_grid = list(np.array(records[0]["object_patches"]).shape)
        result.metrics = metrics
        return result

    def _aggregate_dual(self, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]) -> ProbeResult:
        img = np.stack([a["image_embedding"] for a in arrays])
        txt = np.stack([a["text_embedding"] for a in arrays])
        index = np.arange(len(arrays))

        def gap(rows: np.ndarray) -> float:
            return float(np.linalg.norm(img[rows].mean(axis=0) - txt[rows].mean(axis=0)))

        metrics = {"modality_gap": Metric(gap(index), *bootstrap_ci(index, gap, seed=self.seed),
                                          "‖mean image embedding − mean text embedding‖ (normalised)")}
        result = AttentionResult(probe=self.name, n_examples=len(records), n_failed=0, metrics=metrics, parts=())
        with_cls = [r for r in records if "cls_patch_attention" in r]
        if with_cls:
            per_layer = np.array([r["cls_patch_attention"] for r in with_cls])  # [N, L, patches]
            ratio = _object_attention_ratio([(row.mean(axis=0).tolist(), r["object_patches"]) for row, r in zip(per_layer, with_cls)])
            metrics["object_attention_ratio"] = Metric(ratio, description="CLS attention per object patch / per background patch")
            result.token_grid = list(np.array(with_cls[0]["object_patches"]).shape)
        else:
            result.notes.append("CLS attention over patches is not exposed by this image tower")
        return result


def part_labels(batch: PreparedBatch, bos_token_id: int | None, row: int = 0) -> np.ndarray:
    """The part (index into PARTS) of every key position up to the last prompt token of ``row``.

    BOS is the first ``bos_token_id`` position wherever it sits (BLIP-2 puts it after the image);
    system text is what precedes the first image token, instruction what follows the last one.
    Masked positions (padding) get -1 and are excluded.
    """
    last = int(batch.last_positions()[row])
    ids = batch.input_ids[row, : last + 1].tolist()
    mask = batch.attention_mask[row, : last + 1].tolist()
    spans = batch.image_spans[row]
    first_image = spans[0][0] if spans else last + 1
    labels = np.full(last + 1, PARTS.index("instruction"))
    labels[:first_image] = PARTS.index("system")
    for start, end in spans:
        labels[start:end] = PARTS.index("image")
    if bos_token_id is not None and bos_token_id in ids:
        labels[ids.index(bos_token_id)] = PARTS.index("bos")
    labels[np.array(mask) == 0] = -1
    return labels


def _reduce_attention(adapter: GenerativeAdapter, batch: PreparedBatch) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Run the forward with hooks that keep only part sums of the last prompt token's attention row.

    Returns masses [layers, heads, parts], the mean attention per image token [n_image], and the logits.
    """
    last = int(batch.last_positions()[0])
    labels = torch.as_tensor(part_labels(batch, adapter.tokenizer.bos_token_id))
    visible = torch.nonzero(labels >= 0).flatten()
    image_index = torch.nonzero(labels == PARTS.index("image")).flatten()
    per_layer: list[np.ndarray] = []
    image_rows: list[torch.Tensor] = []

    def reduce(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        weights = output[1]
        if weights is None:
            raise RuntimeError("attention weights were not returned; the eager attention switch did not take")
        row = weights[0, :, last, : last + 1].float()  # [heads, keys]
        sums = torch.zeros(row.shape[0], len(PARTS), dtype=row.dtype, device=row.device)
        sums.index_add_(1, labels[visible].to(row.device), row[:, visible.to(row.device)])
        per_layer.append(sums.cpu().numpy())
        if len(image_index):
            image_rows.append(row[:, image_index.to(row.device)].mean(0).cpu())

    with adapter.eager_attention(), hooks([(m, reduce) for m in adapter.lm_attention_modules()]):
        logits = adapter.forward(batch).logits
    image_mean = torch.stack(image_rows).mean(0).numpy() if image_rows else np.zeros(0)
    return np.stack(per_layer), image_mean, logits


def _part_counts(batch: PreparedBatch, adapter: GenerativeAdapter) -> dict[str, int]:
    labels = part_labels(batch, adapter.tokenizer.bos_token_id)
    return {part: int((labels == i).sum()) for i, part in enumerate(PARTS)}


def _first_of_tail(low_layers: np.ndarray, n_layers: int) -> int | None:
    """The first layer l such that every layer >= l is in ``low_layers``; None if the last layer is not."""
    if n_layers == 0 or (n_layers - 1) not in set(low_layers.tolist()):
        return None
    layer = n_layers - 1
    low = set(low_layers.tolist())
    while layer - 1 in low:
        layer -= 1
    return layer


def _object_attention_ratio(rows: list[tuple[list[float], list[list[int]] | None]]) -> float | None:
    """Mean attention per object patch over mean attention per background patch (ratio of means)."""
    on, off = [], []
    for attention, patches in rows:
        if patches is None:
            return None
        mask = np.array(patches, dtype=bool).ravel()
        values = np.array(attention, dtype=float)
        if values.shape != mask.shape or mask.all() or not mask.any():
            continue
        on.append(values[mask].mean())
        off.append(values[~mask].mean())
    if not on or np.mean(off) == 0:
        return None
    return float(np.mean(on) / np.mean(off))
