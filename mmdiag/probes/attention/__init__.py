"""Language-token attention dominance (FastV-style), measured exactly and cheaply.

For each example the LLM reads "Is there a <object> in the image?" about a scene. At the last prompt
token (and, with ``generate_tokens``, at each greedily generated answer token) every layer's attention
row is recomputed from the layer's own q and k (:mod:`mmdiag.adapters.attention_rows`; the main forward keeps
SDPA) and reduced at once to the masses of the prompt's parts (:mod:`.attention_parts`), per head.
Kept per example: [layers, heads, parts] masses and per-layer image-token rows (never L x H x N x N).

Reported beside the masses, because high image mass does not prove the image is used:
* sinks: BOS and visual sink tokens (massive activations), their mass, and sink-free renormalised masses;
* FastV per-token efficiency ε = mass / tokens, image over text, as a ratio of means;
* the answer's dependence on the image: |ΔP(yes)| and the total-variation distance of the whole
  next-token distribution when the image is replaced by its mean colour, or by Gaussian noise;
* the same masses for an untrained copy of the model (uniform-ish attention: mass ≈ share of tokens);
* where in the image: image-token attention on the patch grid, per object vs background patch;
* BLIP-2: the Q-Former's cross-attention over patches as well.
Dual encoders: the modality gap (Liang et al. 2022) and the CLS token's attention over patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmdiag.adapters.attention_rows import AttentionRows
from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter, PreparedBatch
from mmdiag.adapters.capture import hooks
from mmdiag.adapters.generative import GenerativeAdapter
from mmdiag.blind_inputs import gaussian_noise, mean_colour
from mmdiag.metrics.stats import bootstrap_ci, bootstrap_ci_columns
from mmdiag.probes.attention.encoder_decoder import measure_encoder_decoder
from mmdiag.probes.attention.parts import (
    BOS,
    GENERATED,
    IMAGE,
    INSTRUCTION,
    PARTS,
    SINK_THRESHOLD,
    SYSTEM,
    SinkTracker,
    part_labels,
    reduce_rows,
    sink_free,
)
from mmdiag.probes.attention.specs import METRIC_SPECS
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.sections import Finding, ReportSection
from mmdiag.sources.contract import Dataset, object_patch_mask, object_region_mask

QUESTION = "Is there a {name} in the image?"
CAPTION = "a photo of a {name}"
TOP_HEADS = 5


@dataclass
class AttentionResult(ProbeResult):
    """Per-layer masses with CIs (raw, sink-free, untrained), the head x layer map, top heads."""

    parts: tuple[str, ...] = PARTS
    layer_mass: dict[str, list[float]] = field(default_factory=dict)  # part -> [layers]
    layer_mass_ci: dict[str, list[list[float]]] = field(default_factory=dict)  # part -> [layers][2]
    sink_free_layer_mass: dict[str, list[float]] = field(default_factory=dict)
    sink_layer_mass: list[float] = field(default_factory=list)
    untrained_layer_mass: dict[str, list[float]] = field(default_factory=dict)
    answer_layer_mass: dict[str, list[float]] = field(default_factory=dict)
    head_image_mass: list[list[float]] = field(default_factory=list)  # [layers][heads]
    top_heads: list[dict[str, float]] = field(default_factory=list)
    token_counts: dict[str, float] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    qformer_layer_object_ratio: list[float | None] = field(default_factory=list)
    cls_layer_object_ratio: list[float | None] = field(default_factory=list)
    token_grid: list[int] | None = None
    layers: list[int] = field(default_factory=list)  # the decoder layer of each row of the per-layer arrays
    encoder_text_layer_mass: dict[str, list[float]] = field(default_factory=dict)  # T5: text rows, part -> [layers]
    threshold: float = 0.1


class AttentionProbe(Probe):
    """Attention mass on image vs text tokens at the answer position, per layer and head."""

    name = "attention"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_specs = METRIC_SPECS  # every headline metric, defined once

    def __init__(
        self,
        resolution: int = 64,
        threshold: float = 0.1,
        seed: int = 0,
        generate_tokens: int = 0,
        untrained_baseline: bool = True,
        sink_threshold: float = SINK_THRESHOLD,
        sink_from_layer: int = 2,
    ) -> None:
        self.resolution = resolution
        self.threshold = threshold
        self.seed = seed
        self.generate_tokens = generate_tokens
        self.untrained_baseline = untrained_baseline
        self.sink_threshold = sink_threshold
        self.sink_from_layer = sink_from_layer
        self._untrained: Adapter | None = None

    def setup(self, adapter: Adapter) -> None:
        self._untrained = adapter.untrained_copy(self.seed) if self.untrained_baseline else None

    def unusable_data(self, source: Any) -> str | None:
        if not getattr(source, "names_objects", True):
            return (
                f"the {source.name} data names no object in any entry, and the attention probe asks about one "
                "(VSR's random split has no subj/obj: use its zero-shot split, What'sUp, or coco:DIR)"
            )
        return None

    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        return [
            ProbeExample(f"{s.example_id}/attention", s, {"object": s.object_names[0]}) for s in data if s.object_names
        ]

    # -- one example ---------------------------------------------------------------------------
    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Each example's attention forward on its own (its rows are streamed per layer), every example's blind
        images (mean colour, noise) scored in one batched forward."""
        if adapter.kind == DUAL_ENCODER:
            return [self._run_dual(adapter, example, example.example.image(self.resolution)) for example in examples]
        assert isinstance(adapter, GenerativeAdapter)
        blind = self._blind_first_logits(adapter, examples)
        return [self._run_generative(adapter, example, blind[i]) for i, example in enumerate(examples)]

    def _blind_images(self, image: Any) -> dict[str, Any]:
        return {"mean_colour": mean_colour(image), "noise": gaussian_noise(image.size, seed=self.seed)}

    def _blind_first_logits(
        self, adapter: GenerativeAdapter, examples: list[ProbeExample]
    ) -> list[dict[str, torch.Tensor]]:
        """Per example and blind image, the first answer token's logits (``score_rows`` prompts per forward)."""
        rows = [
            (i, name, image, QUESTION.format(name=example.inputs["object"]))
            for i, example in enumerate(examples)
            for name, image in self._blind_images(example.example.image(self.resolution)).items()
        ]
        out: list[dict[str, torch.Tensor]] = [{} for _ in examples]
        for start in range(0, len(rows), adapter.score_rows):
            part = rows[start : start + adapter.score_rows]
            first = adapter.first_answer_logits(adapter.prepare([r[2] for r in part], [r[3] for r in part]))
            for (i, name, _, _), logits in zip(part, first):
                out[i][name] = logits
        return out

    def _run_generative(
        self, adapter: GenerativeAdapter, example: ProbeExample, blind_logits: dict[str, torch.Tensor]
    ) -> ExampleOutput:
        image = example.example.image(self.resolution)
        question = QUESTION.format(name=example.inputs["object"])
        prompt = adapter.prepare([image], [question])
        prompt_end = int(prompt.last_positions()[0])
        batch, answer = self._with_answer(adapter, prompt)
        measured = self._measure(adapter, batch, prompt_end)
        masses, image_rows, sinks = measured["masses"], measured["image_rows"], measured["sinks"]
        free, sink_mass = sink_free(masses[:, :, 0], image_rows[:, :, 0], sinks)  # prompt row, per head
        probs = torch.softmax(measured["first_logits"].float(), -1)
        real = adapter.yes_no(measured["first_logits"][None])
        values: dict[str, Any] = {
            "question": question,
            "answer": answer,
            "token_counts": {
                p: int(((measured["labels"] == i) & (np.arange(len(measured["labels"])) <= prompt_end)).sum())
                for i, p in enumerate(PARTS)
            },
            "masses": _round(masses[:, :, 0]),  # [layers][heads][parts]
            "sinks": sinks,
            "sink_phi_max": measured["phi_max"],
            "bos_phi": measured["bos_phi"],
            "sink_mass": _round(sink_mass.mean(axis=1)),  # [layers]
            "sink_free_masses": _round(np.nanmean(free, axis=1)),  # [layers][parts]
            "image_token_attention": _round(image_rows[:, :, 0].mean(axis=(0, 1))),
            "p_yes": float(real.p_yes_norm[0]),
            "blind": {
                name: self._blind_shift(adapter, logits, probs, float(real.p_yes_norm[0]))
                for name, logits in blind_logits.items()
            },
        }
        if masses.shape[2] > 1:
            values["answer_masses"] = _round(masses[:, :, 1:].mean(axis=2))
        if "encoder_masses" in measured:  # T5: the question's encoding, text rows over image tokens
            values["encoder_text_masses"] = _round(measured["encoder_masses"].mean(axis=1))  # [layers][parts]
        if prompt.token_grid is not None and example.example.objects:  # object regions need positions
            values["object_patches"] = object_patch_mask(example.example, prompt.token_grid).astype(int).tolist()
        elif prompt.token_regions is not None and example.example.objects:  # tiles, row ends: each token's own box
            values["object_patches"] = object_region_mask(example.example, prompt.token_regions[0]).tolist()
            values["attention_map"] = _round(
                attention_map(image_rows[:, :, 0].mean(axis=(0, 1)), prompt.token_regions[0])
            )
        elif example.example.objects:
            values["no_object_patches"] = (
                f"{adapter.family}'s image tokens are learned queries with no place on the "
                "image (the Q-Former ratio below reads its cross-attention over patches)"
            )
        if hasattr(adapter, "qformer_patch_attention") and example.example.objects:
            values["qformer_patch_attention"] = _round(adapter.qformer_patch_attention([image])[0].cpu().numpy())
            values["vision_object_patches"] = (
                object_patch_mask(example.example, adapter.vision_grid()).astype(int).tolist()
            )
        if self._untrained is not None:
            untrained = self._measure(self._untrained, prompt, prompt_end)
            values["untrained_masses"] = _round(untrained["masses"][:, :, 0].mean(axis=1))  # [layers][parts]
        return ExampleOutput(values)

    def _with_answer(self, adapter: GenerativeAdapter, prompt: PreparedBatch) -> tuple[PreparedBatch, str | None]:
        """The prompt extended by greedily generated answer tokens (teacher-forced rows equal generation's)."""
        if adapter.is_encoder_decoder:  # the answer is the decoder's: its rows are the start token and the answer
            start = adapter.decoder_start(1)
            decoder = start
            if self.generate_tokens:
                with torch.no_grad():
                    out = adapter.model.generate(**prompt.inputs, max_new_tokens=self.generate_tokens, do_sample=False)
                decoder = out[:, :-1] if out.shape[1] > 1 else start
            batch = PreparedBatch(
                {**prompt.inputs, "decoder_input_ids": decoder},
                prompt.prompts,
                prompt.image_spans,
                prompt.token_grid,
                prompt.padding_side,
                prompt.token_regions,
            )
            answer = adapter.tokenizer.decode(out[0], skip_special_tokens=True) if self.generate_tokens else None
            return batch, answer
        if not self.generate_tokens:
            return prompt, None
        out = adapter.generate_from(prompt, max_new_tokens=self.generate_tokens, do_sample=False)
        new = out[:, prompt.input_ids.shape[1] :]
        inputs = adapter.extend_inputs(prompt, new)
        batch = PreparedBatch(
            inputs, prompt.prompts, prompt.image_spans, prompt.token_grid, prompt.padding_side, prompt.token_regions
        )
        return batch, adapter.tokenizer.decode(new[0], skip_special_tokens=True)

    def _measure(self, adapter: GenerativeAdapter, batch: PreparedBatch, prompt_end: int) -> dict[str, Any]:
        """One forward with streamed rows at the prompt end and answer positions, plus sink tracking."""
        if adapter.is_encoder_decoder:
            return measure_encoder_decoder(adapter, batch, prompt_end, self.sink_from_layer, self.sink_threshold)
        bos_id = adapter.tokenizer.bos_token_id
        labels = part_labels(batch, bos_id, prompt_end)
        n_tokens = int(batch.attention_mask[0].sum())
        positions = torch.arange(prompt_end, max(prompt_end + 1, n_tokens - 1))[None]  # rows predicting answer tokens
        label_t = torch.as_tensor(labels)
        image_index = torch.nonzero(label_t == IMAGE).flatten()
        bos_position = int(np.nonzero(labels == BOS)[0][0]) if (labels == BOS).any() else None
        n_layers = len(adapter.lm_attention_modules())
        masses: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]
        image_rows: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]
        tracker = SinkTracker(image_index, min(self.sink_from_layer, max(0, n_layers - 1)))

        def reduce(layer: int, probs: torch.Tensor) -> None:
            masses[layer] = reduce_rows(probs[0], label_t).cpu().numpy()  # [heads, queries, parts]
            image_rows[layer] = probs[0][..., image_index.to(probs.device)].cpu().numpy()  # [heads, queries, n_img]

        def layer_input(index: int):  # noqa: ANN202
            def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
                hidden = args[0] if args else kwargs["hidden_states"]
                tracker.observe(index, hidden[0], bos_position)

            return hook

        recorder = AttentionRows(
            adapter.lm_attention_modules(),
            positions,
            batch.attention_mask,
            reduce,
            prefix=adapter.bidirectional_prefix(batch),
        )
        layer_hooks = [(layer, layer_input(i)) for i, layer in enumerate(adapter.lm_layers())]
        with recorder.active(), hooks(layer_hooks):
            logits = adapter.forward(batch).logits
        phi = tracker.phi
        return {
            "masses": np.stack(masses),  # [layers, heads, queries, parts]
            "image_rows": np.stack(image_rows),  # [layers, heads, queries, n_img]
            "sinks": tracker.sinks(self.sink_threshold),
            "phi_max": float(phi.max()) if phi is not None and len(phi) else 0.0,
            "bos_phi": tracker.bos_phi,
            "labels": labels,
            "logits": logits,
            "first_logits": logits[0, prompt_end],
        }

    @staticmethod
    def _blind_shift(
        adapter: GenerativeAdapter, first: torch.Tensor, probs: torch.Tensor, p_yes: float
    ) -> dict[str, float]:
        """How far the answer moves when the image is blind: |Δ P(yes)| and the total-variation distance of the
        first answer token's distribution (``first``: the blind prompt's first-answer logits, [vocab])."""
        blind_probs = torch.softmax(first.float(), -1)
        blind_yes = float(adapter.yes_no(first[None]).p_yes_norm[0])
        return {
            "p_yes": blind_yes,
            "yes_shift": abs(p_yes - blind_yes),
            "tv": float(0.5 * (probs - blind_probs).abs().sum()),
        }

    def _run_dual(self, adapter: Adapter, example: ProbeExample, image: Any) -> ExampleOutput:
        caption = CAPTION.format(name=" and a ".join(example.example.object_names))
        img, txt = adapter.embeddings([image], [caption])
        values: dict[str, Any] = {"caption": caption}
        arrays = {"image_embedding": img[0].cpu().numpy(), "text_embedding": txt[0].cpu().numpy()}
        if self._untrained is not None:
            u_img, u_txt = self._untrained.embeddings([image], [caption])
            arrays.update(
                untrained_image_embedding=u_img[0].cpu().numpy(), untrained_text_embedding=u_txt[0].cpu().numpy()
            )
        try:
            cls = adapter.cls_attention([image])[0].cpu().numpy()  # [layers, heads, patches]
        except Exception as err:  # noqa: BLE001 - some towers do not expose weights; recorded, not fatal
            values["cls_attention_unavailable"] = str(err)
        else:
            if example.example.objects:  # object regions need positions
                values["object_patches"] = (
                    object_patch_mask(example.example, adapter.vision_grid()).astype(int).tolist()
                )
            values["cls_patch_attention"] = _round(cls.mean(axis=1))  # [layers][patches]
        return ExampleOutput(values, arrays)

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection | None:
        from mmdiag.probes.attention.report import section

        return section(result, records)

    @classmethod
    def finding(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> Finding | None:
        from mmdiag.probes.attention.finding import finding

        return finding(result, records)

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, float]:
        if "masses" not in values:
            return {}
        masses = np.array(values["masses"], dtype=float)
        return {
            "mean_image_mass": float(masses[..., IMAGE].mean()),
            "blind_answer_shift": float(values["blind"]["mean_colour"]["yes_shift"]),
        }

    # -- aggregation ---------------------------------------------------------------------------
    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        if adapter.kind == DUAL_ENCODER:
            return self._aggregate_dual(records, arrays, getattr(adapter, "pooling_query", "the CLS token"))
        masses = np.array([r["masses"] for r in records], dtype=float)  # [N, L, H, P]
        per_layer = masses.mean(axis=2)  # [N, L, P]
        result = AttentionResult(
            probe=self.name, n_examples=len(records), n_failed=0, metrics={}, threshold=self.threshold
        )
        result.layer_mass, result.layer_mass_ci = _curves(per_layer, self.seed)
        result.layers = adapter.lm_attention_layer_indices()
        if result.layers != list(range(len(result.layers))):
            result.notes.append(
                f"attention is read at decoder layers {result.layers}, the softmax-attention layers; the others "
                "(linear attention) have no attention probabilities, and the image also reaches the answer through them"
            )
        free = np.array([r["sink_free_masses"] for r in records], dtype=float)
        result.sink_free_layer_mass = {p: np.nanmean(free[:, :, i], axis=0).tolist() for i, p in enumerate(PARTS)}
        result.sink_layer_mass = np.mean([r["sink_mass"] for r in records], axis=0).tolist()
        head_image = masses[..., IMAGE]  # [N, L, H]
        result.head_image_mass = head_image.mean(axis=0).tolist()
        result.top_heads = _top_heads(head_image, self.seed)
        counts = {p: float(np.mean([r["token_counts"][p] for r in records])) for p in PARTS}
        result.token_counts = counts
        result.sinks = {
            "threshold": self.sink_threshold,
            "from_layer": min(self.sink_from_layer, max(0, masses.shape[1] - 1)),
            "examples_with_visual_sinks": int(sum(bool(r["sinks"]) for r in records)),
            "visual_sink_indices": sorted({i for r in records for i in r["sinks"]})[:50],
            "max_phi": float(max(r["sink_phi_max"] for r in records)),
            "max_bos_phi": float(max(r["bos_phi"] for r in records)),
        }
        image_mass = per_layer[:, :, IMAGE]
        index = np.arange(len(records))
        ratio = _efficiency_ratio(per_layer, counts)
        yes_shift = np.array([r["blind"]["mean_colour"]["yes_shift"] for r in records])
        tv = np.array([r["blind"]["mean_colour"]["tv"] for r in records])
        noise_shift = np.array([r["blind"]["noise"]["yes_shift"] for r in records])
        sink_mass = np.array([np.mean(r["sink_mass"]) for r in records])
        free_image = np.array([np.nanmean(np.array(r["sink_free_masses"], dtype=float)[:, IMAGE]) for r in records])
        low = np.where(image_mass.mean(axis=0) < self.threshold)[0]

        def ci(values: np.ndarray, statistic=np.mean) -> tuple[float, float]:  # noqa: ANN001
            return bootstrap_ci(values, statistic, seed=self.seed)

        metrics = {
            "mean_image_mass": Metric(
                float(image_mass.mean()),
                *ci(image_mass.mean(axis=1)),
                "attention on image tokens at the answer position, mean over layers and heads",
            ),
            "sink_free_image_mass": Metric(
                float(np.nanmean(free_image)),
                *ci(free_image, np.nanmean),
                "the same without BOS and visual sinks, renormalised",
            ),
            "mean_sink_mass": Metric(float(sink_mass.mean()), *ci(sink_mass), "mass on BOS + visual sink tokens"),
            "mean_bos_mass": Metric(
                float(per_layer[:, :, BOS].mean()), *ci(per_layer[:, :, BOS].mean(axis=1)), "mass on BOS"
            ),
            "visual_sinks_per_example": Metric(
                float(np.mean([len(r["sinks"]) for r in records])),
                description=f"image tokens whose peak activation is >= {self.sink_threshold:g}x the median token's",
            ),
            "image_text_efficiency_ratio": Metric(
                ratio(index), *ci(index, ratio), "FastV per-token efficiency, image over text tokens (ratio of means)"
            ),
            "blind_answer_shift": Metric(
                float(yes_shift.mean()), *ci(yes_shift), "mean |ΔP(yes)|, image -> its mean colour"
            ),
            "blind_tv_distance": Metric(
                float(tv.mean()), *ci(tv), "total variation of the next-token distribution, same swap"
            ),
            "noise_answer_shift": Metric(
                float(noise_shift.mean()), *ci(noise_shift), "mean |ΔP(yes)|, image -> Gaussian noise"
            ),
            "image_mass_low_from_layer": Metric(
                low_from := _first_of_tail(low, image_mass.shape[1]),
                description=f"first layer from which image mass stays < {self.threshold}",
                undefined=None
                if low_from is not None
                else f"the image mass of the last layer is not below {self.threshold}: it never stays low",
            ),
        }
        object_ratio = _object_attention_ratio([(r["image_token_attention"], r.get("object_patches")) for r in records])
        if object_ratio is not None:
            metrics["object_attention_ratio"] = Metric(
                object_ratio, description="image attention per object patch / per background patch"
            )
            result.token_grid = _overlay_grid(records[0])
        else:
            metrics["object_attention_ratio"] = Metric(
                None,
                description="image attention per object patch / per background patch",
                undefined=_why_no_object_ratio(records),
            )
        if "untrained_masses" in records[0]:
            untrained = np.array([r["untrained_masses"] for r in records], dtype=float)  # [N, L, P]
            result.untrained_layer_mass = {p: untrained[:, :, i].mean(axis=0).tolist() for i, p in enumerate(PARTS)}
            u_ratio = _efficiency_ratio(untrained, counts)
            metrics["untrained_mean_image_mass"] = Metric(
                float(untrained[:, :, IMAGE].mean()),
                *ci(untrained[:, :, IMAGE].mean(axis=1)),
                "image mass of an untrained copy (the no-learning reference)",
            )
            metrics["untrained_image_text_efficiency_ratio"] = Metric(
                u_ratio(index), *ci(index, u_ratio), "efficiency ratio, untrained copy"
            )
        if "answer_masses" in records[0]:
            answer = np.array([r["answer_masses"] for r in records], dtype=float).mean(axis=2)  # [N, L, P]
            result.answer_layer_mass = {p: answer[:, :, i].mean(axis=0).tolist() for i, p in enumerate(PARTS)}
            metrics["answer_image_mass"] = Metric(
                float(answer[:, :, IMAGE].mean()),
                *ci(answer[:, :, IMAGE].mean(axis=1)),
                "image mass at the generated answer tokens",
            )
        if "encoder_text_masses" in records[0]:
            encoder = np.array([r["encoder_text_masses"] for r in records], dtype=float)  # [N, L, P]
            result.encoder_text_layer_mass = {p: encoder[:, :, i].mean(axis=0).tolist() for i, p in enumerate(PARTS)}
            text_to_image = encoder[:, :, IMAGE].mean(axis=1)
            metrics["encoder_text_image_mass"] = Metric(
                float(text_to_image.mean()),
                *ci(text_to_image),
                "T5 encoder: attention from text tokens to image tokens",
            )
        if getattr(adapter, "attention_source", None):
            result.notes.append(f"attention read from the {adapter.attention_source}")
        if "qformer_patch_attention" in records[0]:
            qf = np.array([r["qformer_patch_attention"] for r in records], dtype=float)  # [N, Lq, patches]
            result.qformer_layer_object_ratio = [
                _object_attention_ratio(
                    [(row[layer].tolist(), r["vision_object_patches"]) for row, r in zip(qf, records)]
                )
                for layer in range(qf.shape[1])
            ]
            overall = _object_attention_ratio(
                [(row.mean(axis=0).tolist(), r["vision_object_patches"]) for row, r in zip(qf, records)]
            )
            metrics["qformer_object_attention_ratio"] = Metric(
                overall, description="Q-Former cross-attention per object patch / background patch"
            )
        result.metrics = metrics
        return result

    def _aggregate_dual(
        self, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]], query: str = "the CLS token"
    ) -> ProbeResult:
        index = np.arange(len(arrays))

        def gap_of(prefix: str):  # noqa: ANN202
            img = np.stack([a[f"{prefix}image_embedding"] for a in arrays])
            txt = np.stack([a[f"{prefix}text_embedding"] for a in arrays])
            return lambda rows: float(np.linalg.norm(img[rows].mean(axis=0) - txt[rows].mean(axis=0)))

        gap = gap_of("")
        metrics = {
            "modality_gap": Metric(
                gap(index),
                *bootstrap_ci(index, gap, seed=self.seed),
                "‖mean image embedding − mean text embedding‖ (normalised)",
            )
        }
        if "untrained_image_embedding" in arrays[0]:
            u_gap = gap_of("untrained_")
            metrics["untrained_modality_gap"] = Metric(
                u_gap(index), *bootstrap_ci(index, u_gap, seed=self.seed), "the same for an untrained copy"
            )
        result = AttentionResult(probe=self.name, n_examples=len(records), n_failed=0, metrics=metrics, parts=())
        with_cls = [r for r in records if "cls_patch_attention" in r and "object_patches" in r]
        if not with_cls and any("cls_patch_attention" in r for r in records):
            metrics["object_attention_ratio"] = Metric(
                None,
                description=f"attention of {query} per object patch / per background patch",
                undefined=_why_no_object_ratio(records),
            )
        elif with_cls:
            per_layer = np.array([r["cls_patch_attention"] for r in with_cls])  # [N, L, patches]
            result.cls_layer_object_ratio = [
                _object_attention_ratio(
                    [(row[layer].tolist(), r["object_patches"]) for row, r in zip(per_layer, with_cls)]
                )
                for layer in range(per_layer.shape[1])
            ]
            ratio = _object_attention_ratio(
                [(row.mean(axis=0).tolist(), r["object_patches"]) for row, r in zip(per_layer, with_cls)]
            )
            metrics["object_attention_ratio"] = Metric(
                ratio, description=f"attention of {query} per object patch / per background patch"
            )
            result.token_grid = list(np.array(with_cls[0]["object_patches"]).shape)
        else:
            result.notes.append("CLS attention over patches is not exposed by this image tower")
        return result


def _round(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=float), 6).tolist()


def _curves(per_layer: np.ndarray, seed: int) -> tuple[dict[str, list[float]], dict[str, list[list[float]]]]:
    means = {p: per_layer[:, :, i].mean(axis=0).tolist() for i, p in enumerate(PARTS)}
    cis = {p: bootstrap_ci_columns(per_layer[:, :, i], seed=seed).tolist() for i, p in enumerate(PARTS)}
    return means, cis


def _efficiency_ratio(per_layer: np.ndarray, counts: dict[str, float]):  # noqa: ANN202
    """ε_img / ε_text over a set of example rows, as a ratio of means (never a mean of ratios)."""
    n_text = counts["system"] + counts["instruction"] + counts["generated"]

    def ratio(rows: np.ndarray) -> float:
        image = per_layer[rows][:, :, IMAGE].mean()
        text = per_layer[rows][:, :, [SYSTEM, INSTRUCTION, GENERATED]].sum(-1).mean()
        if text <= 0 or n_text <= 0 or counts["image"] <= 0:
            return float("nan")
        return float((image / counts["image"]) / (text / n_text))

    return ratio


def _top_heads(head_image: np.ndarray, seed: int) -> list[dict[str, float]]:
    """The (layer, head) pairs with the most image mass, with bootstrap CIs over examples."""
    n, layers, heads = head_image.shape
    flat = head_image.reshape(n, layers * heads)
    ci = bootstrap_ci_columns(flat, seed=seed)
    means = flat.mean(axis=0)
    order = np.argsort(-means)[:TOP_HEADS]
    return [
        {
            "layer": int(i // heads),
            "head": int(i % heads),
            "image_mass": float(means[i]),
            "ci_low": float(ci[i, 0]),
            "ci_high": float(ci[i, 1]),
        }
        for i in order
    ]


def _first_of_tail(low_layers: np.ndarray, n_layers: int) -> int | None:
    """The first layer l such that every layer >= l is in ``low_layers``; None if the last layer is not."""
    low = set(low_layers.tolist())
    if n_layers == 0 or (n_layers - 1) not in low:
        return None
    layer = n_layers - 1
    while layer - 1 in low:
        layer -= 1
    return layer


def _why_no_object_ratio(records: list[dict[str, Any]]) -> str:
    if not any("object_patches" in r for r in records):
        reasons = [r["no_object_patches"] for r in records if "no_object_patches" in r]
        return reasons[0] if reasons else "the data source gives no object positions (object regions unknown)"
    return "no example has both object and background patches on the token grid"


ATTENTION_MAP_SIDE = 16


def attention_map(attention: np.ndarray, regions: np.ndarray, side: int = ATTENTION_MAP_SIDE) -> np.ndarray:
    """Attention per unit of image area on a ``side`` x ``side`` raster: each token's attention spread evenly over
    its region (tokens of several views stack: the base view and a tile both add to the cells they cover).
    Flattened row-major, as a grid model's ``image_token_attention`` is."""
    raster = np.zeros((side, side))
    for value, (y0, x0, y1, x1) in zip(attention, regions):
        if np.isnan(y0):
            continue
        top, left = min(int(y0 * side), side - 1), min(int(x0 * side), side - 1)
        bottom, right = max(int(np.ceil(y1 * side - 1e-9)), top + 1), max(int(np.ceil(x1 * side - 1e-9)), left + 1)
        raster[top:bottom, left:right] += value / ((bottom - top) * (right - left))
    return raster.ravel()


def _overlay_grid(record: dict[str, Any]) -> list[int] | None:
    """(rows, cols) of the attention overlay: the token grid, or the raster of a model whose tokens have regions."""
    if "attention_map" in record:
        return [ATTENTION_MAP_SIDE, ATTENTION_MAP_SIDE]
    shape = np.array(record["object_patches"]).shape
    return list(shape) if len(shape) == 2 else None


def _object_attention_ratio(rows: list[tuple[list[float], list[list[int]] | None]]) -> float | None:
    """Mean attention per object patch over mean attention per background patch (ratio of means)."""
    on, off = [], []
    for attention, patches in rows:
        if patches is None:
            return None
        marks = np.array(patches, dtype=int).ravel()  # 1 object, 0 background, -1 a token with no region
        values = np.array(attention, dtype=float)
        mask, background = marks == 1, marks == 0
        if values.shape != mask.shape or not background.any() or not mask.any():
            continue
        on.append(values[mask].mean())
        off.append(values[background].mean())
    if not on or np.mean(off) == 0:
        return None
    return float(np.mean(on) / np.mean(off))
