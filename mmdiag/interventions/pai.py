"""PAI (Liu et al., ECCV 2024, "Paying more attention to image"): amplify the attention to image tokens, and decide
from logits contrasted with the image-free prompt's.

The arithmetic of the reference code (LALBJ/PAI @ 9bbd8bd, MIT):

- ``attention.py`` L77-95: in layers ``start`` to ``end`` (``range(start_layer, end_layer)``: 2 to the last of
  LLaVA-1.5's 32 by default), for every head, on the last query row only (the last prompt position at prefill,
  each generated token after it), the pre-softmax scores of the image keys become ``w + alpha * |w|``, after the
  mask is added and clamped to ``finfo.min``;
- ``CFG.py`` L29-57: the decision is read from ``gamma * (log p_c - log p_u) + log p_u`` where ``p_c`` is the
  amplified model's next-token distribution and ``p_u`` that of the same prompt with the image placeholder removed
  (``[bos, before, after]``, amplification off: it has no image keys), with every token whose ``log p_c`` is below
  ``log 0.1 + max log p_c`` set to ``-inf``.

Defaults are the README's POPE and CHAIR commands: ``--alpha 0.2 --gamma 1.1 --start-layer 2 --end-layer 32``. As
with VCD, mmdiag reads the yes/no decision from the contrasted distribution (P(yes) against P(no)); free-text answers
and captions are generated with the amplification alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from mmdiag.adapters import attention_edits
from mmdiag.adapters.attention_edits import Rows
from mmdiag.adapters.base import Adapter
from mmdiag.interventions.base import AttentionEdit, Param, number

CUTOFF = 0.1  # CFG.py L53: fixed, not a parameter of the reference code


def parse_end(raw: Any) -> int | str:
    """``last`` or a 0-based layer (inclusive)."""
    text = str(raw).strip().lower()
    if text == "last":
        return "last"
    value = int(text)
    if value < 0:
        raise ValueError("give last or a layer >= 0")
    return value


def amplify(scores: torch.Tensor, queries: torch.Tensor, rows: Rows, alpha: float) -> torch.Tensor:
    """``scores`` [batch, heads, queries, keys] with PAI's amplification on the image keys of each row's last prompt
    position and the positions after it: ``w + alpha * |w|``."""
    image = rows.image_keys(scores.shape[-1], scores.device)
    last = queries >= rows.prompt_last.to(scores.device)[:, None]
    selected = (last[:, :, None] & image[:, None, :])[:, None]
    clamped = scores.clamp_min(torch.finfo(scores.dtype).min)
    return torch.where(selected, clamped + alpha * clamped.abs(), scores)


def pai_logits(logits: torch.Tensor, logits_u: torch.Tensor, gamma: float = 1.1) -> torch.Tensor:
    """PAI's contrasted next-token scores ([rows, vocab]): ``gamma (log p_c - log p_u) + log p_u``, ``-inf`` where
    ``log p_c < log 0.1 + max log p_c``."""
    scores = torch.log_softmax(logits.float(), dim=-1)
    if gamma == 1:
        return scores
    unconditional = torch.log_softmax(logits_u.float(), dim=-1)
    cutoff = math.log(CUTOFF) + scores.max(dim=-1, keepdim=True).values
    out = gamma * (scores - unconditional) + unconditional
    return out.masked_fill(scores < cutoff, float("-inf"))


class PAI(AttentionEdit):
    name = "pai"
    description = (
        "attention from the last position to image tokens amplified (w + alpha|w|) in LLM layers start-end, and "
        "yes/no decisions contrasted with the image-free prompt's (PAI); free text with the amplification only"
    )
    reference = "Liu et al. ECCV 2024; LALBJ/PAI @ 9bbd8bd (attention.py L77-95, CFG.py L29-57)"
    params = {
        "alpha": Param(0.2, number(0.0, 100.0), "amplification of the image keys' scores (PAI's alpha, 0.2)"),
        "gamma": Param(1.1, number(1.0, 100.0), "weight of the image-free contrast (PAI's gamma, 1.1; 1: none)"),
        "start": Param(2, number(0, 1000, integer=True), "first amplified LLM layer, 0-based (PAI's start_layer, 2)"),
        "end": Param("last", parse_end, "last amplified LLM layer, inclusive (last, as PAI's end_layer 32 of 32)"),
    }

    def window(self, n_layers: int) -> range:
        """The amplified LLM layers of a model with ``n_layers``."""
        end = n_layers - 1 if self.values["end"] == "last" else self.values["end"]
        return range(self.values["start"], end + 1)

    def layer_reason(self, n_layers: int) -> str | None:
        start, end = self.values["start"], self.values["end"]
        if start >= n_layers or (end != "last" and (end >= n_layers or end < start)):
            return f"layers {start}-{end} do not fit the model's {n_layers} LLM layers (0-{n_layers - 1})"
        return None

    @property
    def contrasts_decisions(self) -> bool:
        return self.values["gamma"] != 1

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        if (reason := super().unsupported_reason(adapter)) is not None:
            return reason
        if self.values["gamma"] != 1 and (why := adapter.text_only_reason()) is not None:  # type: ignore[attr-defined]
            return f"its image-free contrast: {why} (gamma=1 applies the amplification alone)"
        return None

    def applied(self, adapter: Adapter) -> contextlib.AbstractContextManager[None]:
        return self._applied(adapter)

    @contextlib.contextmanager
    def _applied(self, adapter: Adapter) -> Iterator[None]:
        window, alpha, gamma = set(self.window(len(adapter.lm_layers()))), self.values["alpha"], self.values["gamma"]

        def edit(layer: int, scores: torch.Tensor, queries: torch.Tensor, rows: Rows) -> torch.Tensor:
            return amplify(scores, queries, rows, alpha) if layer in window and alpha else scores

        with contextlib.ExitStack() as stack:
            if window and alpha:
                stack.enter_context(attention_edits.score_edits(attention_edits.prefix_safe(edit)))
            if gamma != 1:
                contrast = attention_edits.Contrast(
                    self.name, lambda request: replace(request, without_image=True), partial(pai_logits, gamma=gamma)
                )
                stack.enter_context(attention_edits.contrast(contrast))
            yield
