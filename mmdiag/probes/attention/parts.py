"""Reducing attention rows to the parts of a VLM prompt, and the attention sinks among them.

Parts (they partition every visible key, so their masses sum to 1): the BOS token (a sink by
construction), system text before the image, image tokens, instruction text after the image, and
tokens already generated. Visual sinks (Kang et al., ICLR 2025) are image tokens with *massive
activations* (Sun et al., 2024): in the residual stream entering a layer >= ``sink_from_layer``, the
token's largest activation is ``threshold`` times the median token's largest activation in that layer
(phi = max_d |h_t,d| / median_t' max_d |h_t',d|). This is free of scale and width, unlike
max|h| / rms(h), which cannot exceed sqrt(hidden size). Sink-free masses drop BOS and visual sinks
and renormalise the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mmdiag.adapters.base import PreparedBatch

PARTS = ("bos", "system", "image", "instruction", "generated")
BOS, SYSTEM, IMAGE, INSTRUCTION, GENERATED = range(len(PARTS))
SINK_THRESHOLD = 20.0


def part_labels(batch: PreparedBatch, bos_token_id: int | None, prompt_end: int, row: int = 0) -> np.ndarray:
    """The part of every key position of ``row`` (-1 for padding).

    ``prompt_end`` is the last prompt position; later positions are generated tokens. BOS is the first
    ``bos_token_id`` wherever it sits (BLIP-2 puts it after the image).
    """
    mask = batch.attention_mask[row].cpu().numpy()
    ids = batch.input_ids[row].tolist()
    spans = batch.image_spans[row]
    first_image = spans[0][0] if spans else prompt_end + 1
    labels = np.full(len(ids), INSTRUCTION)
    labels[:first_image] = SYSTEM
    for start, end in spans:
        labels[start:end] = IMAGE
    labels[prompt_end + 1 :] = GENERATED
    if bos_token_id is not None and bos_token_id in ids[: prompt_end + 1]:
        labels[ids.index(bos_token_id)] = BOS
    labels[mask == 0] = -1
    return labels


def reduce_rows(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[heads, queries, keys] probabilities -> [heads, queries, parts] masses."""
    visible = labels >= 0
    out = torch.zeros(*probs.shape[:-1], len(PARTS), dtype=probs.dtype, device=probs.device)
    out.index_add_(-1, labels[visible].to(probs.device), probs[..., visible.to(probs.device)])
    return out


@dataclass
class SinkTracker:
    """Running max of phi (peak activation over the median token's peak) per image token, over layers."""

    image_index: torch.Tensor
    from_layer: int
    phi: torch.Tensor | None = None
    bos_phi: float = 0.0
    layers_seen: list[int] = field(default_factory=list)

    def observe(self, layer: int, hidden: torch.Tensor, bos_position: int | None) -> None:
        """``hidden`` is the residual stream entering ``layer``, [tokens, dim] for one example."""
        if layer < self.from_layer:
            return
        peaks = hidden.float().abs().amax(-1)  # [tokens]
        phi = peaks / peaks.median().clamp_min(1e-12)
        image_phi = phi[self.image_index.to(phi.device)].cpu()
        self.phi = image_phi if self.phi is None else torch.maximum(self.phi, image_phi)
        if bos_position is not None:
            self.bos_phi = max(self.bos_phi, float(phi[bos_position]))
        self.layers_seen.append(layer)

    def sinks(self, threshold: float = SINK_THRESHOLD) -> list[int]:
        """Indices (into the image tokens) of visual sinks."""
        if self.phi is None:
            return []
        return torch.nonzero(self.phi >= threshold).flatten().tolist()


def sink_free(masses: np.ndarray, image_rows: np.ndarray, sinks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Drop BOS and the visual sinks, renormalise the parts.

    ``masses`` [..., parts]; ``image_rows`` [..., n_image] (per image token, same leading dims).
    Returns (sink-free masses [..., parts], sink mass [...] = BOS + visual sinks).
    """
    sink_image = image_rows[..., sinks].sum(-1) if sinks else np.zeros(masses.shape[:-1])
    sink_mass = masses[..., BOS] + sink_image
    kept = masses.copy()
    kept[..., BOS] = 0.0
    kept[..., IMAGE] = masses[..., IMAGE] - sink_image
    remaining = 1.0 - sink_mass
    with np.errstate(invalid="ignore", divide="ignore"):
        renormalised = np.where(remaining[..., None] > 1e-9, kept / remaining[..., None], np.nan)
    return renormalised, sink_mass
