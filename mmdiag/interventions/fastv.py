"""FastV's image-token pruning (Chen et al. 2024, "An image is worth 1/2 tokens after layer 2"), token-mask form.

At layer ``k`` the image tokens kept are the ``round((1 - ratio) * n)`` that received the most attention from the
last prompt position in layer ``k - 1`` (mean over heads); the others are masked as keys (score ``finfo.min``) in
every layer from ``k`` on, for every query. This is the attention-mask implementation of the reference code
(pkunlp-icler/FastV @ d1659729, ``src/transformers/.../modeling_llama.py`` L763-806: the ranking of L738-750 on the
attention layer ``k - 1`` returned); the tokens are masked, not dropped, so results show FastV's effect, not its
speed. The reference ranks batch item 0 for the whole batch; here each row ranks its own image, so a row's answer
does not depend on its batch.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mmdiag.adapters import attention_edits
from mmdiag.adapters.attention_edits import Rows
from mmdiag.adapters.base import Adapter
from mmdiag.interventions.base import AttentionEdit, Param, nothing, number


def kept_image_keys(probs: torch.Tensor, queries: torch.Tensor, rows: Rows, ratio: float) -> torch.Tensor:
    """[batch, keys]: the image keys FastV keeps, from one layer's probabilities ``probs`` [batch, heads, queries,
    keys] at the last prompt position (the forward's last query where the prompt ended before it)."""
    n_keys = probs.shape[-1]
    image = rows.image_keys(n_keys, probs.device)
    last = rows.prompt_last.to(probs.device)
    match = queries == last[:, None]
    index = torch.where(match.any(dim=1), match.float().argmax(dim=1), torch.full_like(last, queries.shape[1] - 1))
    attention = probs.float().mean(dim=1)[torch.arange(probs.shape[0], device=probs.device), index]  # [batch, keys]
    kept = torch.zeros_like(image)
    for row in range(probs.shape[0]):
        positions = image[row].nonzero().flatten()
        keep = int(round((1 - ratio) * len(positions)))
        if keep:
            top = attention[row, positions].topk(keep).indices
            kept[row, positions[top]] = True
    return kept


class FastV(AttentionEdit):
    name = "fastv"
    description = (
        "image tokens outside the top share by layer k-1's attention from the last prompt position are masked as "
        "keys from layer k on (FastV, token-mask form)"
    )
    reference = "Chen et al. 2024; pkunlp-icler/FastV @ d1659729 (modeling_llama.py L738-750, L763-806)"
    params = {
        "k": Param(2, number(1, 1000, integer=True), "the layer from which image tokens are pruned (FastV's K, 2)"),
        "ratio": Param(0.5, number(0.0, 1.0), "share of the image tokens pruned (FastV's R, 50%)"),
    }

    def layer_reason(self, n_layers: int) -> str | None:
        if self.values["k"] >= n_layers:
            return f"k={self.values['k']} is past the model's {n_layers} LLM layers"
        return None

    def applied(self, adapter: Adapter) -> contextlib.AbstractContextManager[None]:
        if self.values["ratio"] == 0:
            return nothing()  # nothing pruned: the model computes exactly as without the intervention
        return attention_edits.score_edits(self._edit())

    def _edit(self) -> attention_edits.ScoreEdit:
        k, ratio = self.values["k"], self.values["ratio"]
        state: dict[str, Any] = {}

        def edit(layer: int, scores: torch.Tensor, queries: torch.Tensor, rows: Rows) -> torch.Tensor:
            if layer == k - 1:  # rank on this forward's attention (each decoding step ranks again, as the reference)
                state["kept"] = kept_image_keys(torch.softmax(scores.float(), dim=-1), queries, rows, ratio)
            elif layer >= k and "kept" in state:
                n_keys = scores.shape[-1]
                image = rows.image_keys(n_keys, scores.device)
                kept = state["kept"][:, :n_keys].to(scores.device)
                if kept.shape[1] < n_keys:
                    kept = torch.cat([kept, kept.new_zeros(kept.shape[0], n_keys - kept.shape[1])], dim=1)
                dropped = image & ~kept
                scores = scores.masked_fill(dropped[:, None, None, :], torch.finfo(scores.dtype).min)
            return scores

        return edit
