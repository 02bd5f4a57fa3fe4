"""Attention knockout: block attention from chosen positions to every image token in a window of LLM layers.

The method of Geva et al. 2023 ("Dissecting recall of factual associations"), used for multimodal LLMs by Zhang et
al. 2024 ("Cross-modal information flow in multimodal large language models"): the blocked (query, image key)
scores are set to ``finfo(dtype).min`` before the softmax, as the reference code's additive mask does
(FightingFighting/cross-modal-information-flow-in-MLLM @ c9a1111, ``methods.py``). Knocking out every layer makes
the answer image-blind; knocking out a window and re-measuring says where image evidence enters the answer.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mmdiag.adapters import attention_edits
from mmdiag.adapters.attention_edits import Rows
from mmdiag.adapters.base import Adapter
from mmdiag.interventions.base import AttentionEdit, Param, choice, nothing


def parse_layers(raw: Any) -> str | tuple[int, int]:
    """``all``, ``none``, ``N`` or ``START-END`` (inclusive, 0-based) -> ``"all"``, ``"none"`` or (start, end)."""
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        start, end = int(raw[0]), int(raw[1])
    else:
        text = str(raw).strip().lower()
        if text in ("all", "none"):
            return text
        first, sep, last = text.partition("-")
        try:
            start, end = int(first), int(last if sep else first)
        except ValueError:
            raise ValueError("give all, none, a layer N or a range START-END of LLM layers") from None
    if start < 0 or end < start:
        raise ValueError("a range START-END needs 0 <= START <= END")
    return (start, end)


class Knockout(AttentionEdit):
    name = "knockout"
    description = "attention from the chosen positions to every image token is blocked in a window of LLM layers"
    reference = (
        "Geva et al. 2023; Zhang et al. 2024 (FightingFighting/cross-modal-information-flow-in-MLLM @ c9a1111): "
        "blocked scores set to finfo(dtype).min before the softmax"
    )
    params = {
        "layers": Param(
            "all", parse_layers, "all, none, one layer N, or an inclusive range START-END of LLM layers (0-based)"
        ),
        "from": Param(
            "question",
            choice("question", "last"),
            "question: every position after the image (question, last prompt token, generated tokens); last: the "
            "last prompt position and the tokens generated after it",
        ),
    }

    def window(self, n_layers: int) -> list[int]:
        """The LLM layers knocked out in a model of ``n_layers``."""
        layers = self.values["layers"]
        if layers == "all":
            return list(range(n_layers))
        if layers == "none":
            return []
        return list(range(layers[0], layers[1] + 1))

    def layer_reason(self, n_layers: int) -> str | None:
        layers = self.values["layers"]
        if isinstance(layers, tuple) and layers[1] >= n_layers:
            return f"layers {layers[0]}-{layers[1]} exceed the model's {n_layers} LLM layers (0-{n_layers - 1})"
        return None

    def applied(self, adapter: Adapter) -> contextlib.AbstractContextManager[None]:
        window = set(self.window(len(adapter.lm_layers())))
        if not window:
            return nothing()  # no layer: the model computes exactly as without the intervention
        return attention_edits.score_edits(self._edit(window))

    def _edit(self, window: set[int]) -> attention_edits.ScoreEdit:
        source = self.values["from"]

        def edit(layer: int, scores: torch.Tensor, queries: torch.Tensor, rows: Rows) -> torch.Tensor:
            if layer not in window:
                return scores
            image = rows.image_keys(scores.shape[-1], scores.device)  # [batch, keys]
            if source == "last":
                start = rows.prompt_last.to(scores.device)
            else:  # every position after the row's last image token
                positions = torch.arange(image.shape[1], device=scores.device)
                start = torch.where(image, positions, -1).amax(dim=1) + 1
                start = torch.where(image.any(dim=1), start, torch.full_like(start, image.shape[1] + 1))
            blocked = (queries >= start[:, None])[:, :, None] & image[:, None, :]  # [batch, queries, keys]
            return scores.masked_fill(blocked[:, None], torch.finfo(scores.dtype).min)

        return attention_edits.prefix_safe(edit)
