"""Scoped edits of the language model's attention scores, and decision-level contrasts, for interventions.

An intervention (:mod:`mmdiag.interventions`) that changes attention registers a :data:`ScoreEdit` with
:func:`score_edits` for the length of a block. While one is active, every forward of a generative adapter runs its
LLM under the ``"mmdiag_edited"`` attention implementation: eager attention (the same arithmetic as transformers'
``eager_attention_forward``) whose pre-softmax scores pass through every active edit, layer by layer. The
attention probe's streamed rows (:mod:`mmdiag.adapters.attention_rows`) pass through the same edits, so what it
reports is the attention the edited model computed. Each edit sees the layer index, the scores
``[batch, heads, queries, keys]``, the queries' absolute positions ``[batch, queries]`` and the forward's
:class:`Rows` (where the image tokens are, where each prompt ends).

A decision-level intervention (VCD's contrast) registers a :class:`Contrast` with :func:`contrast`: yes/no scoring
then also scores each request's counterpart (e.g. its image with diffusion noise) and decides from the combined
first-token logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

IMPLEMENTATION = "mmdiag_edited"


@dataclass(frozen=True)
class Rows:
    """Per row of the forward under way: ``image`` [batch, tokens] (True at image-token positions of the prompt)
    and ``prompt_last`` [batch] (the last prompt position; later positions are generated tokens)."""

    image: torch.Tensor
    prompt_last: torch.Tensor

    def image_keys(self, n_keys: int, device: torch.device) -> torch.Tensor:
        """[batch, n_keys]: image-token key positions (positions past the prompt are generated: never image)."""
        image = self.image.to(device)
        if image.shape[1] >= n_keys:
            return image[:, :n_keys]
        return torch.cat([image, image.new_zeros(image.shape[0], n_keys - image.shape[1])], dim=1)


ScoreEdit = Callable[[int, torch.Tensor, torch.Tensor, Rows], torch.Tensor]


@dataclass(frozen=True)
class Contrast:
    """A decision-level contrast: ``counterpart(request)`` is the request scored beside each one (same questions),
    ``combine(logits, counterpart_logits)`` the logits the decision is read from ([rows, vocab] each)."""

    name: str
    counterpart: Callable[[Any], Any]
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


_EDITS: ContextVar[tuple[ScoreEdit, ...]] = ContextVar("mmdiag_score_edits", default=())
_ROWS: ContextVar[Rows | None] = ContextVar("mmdiag_edit_rows", default=None)
_CONTRASTS: ContextVar[tuple[Contrast, ...]] = ContextVar("mmdiag_contrasts", default=())


@contextlib.contextmanager
def score_edits(*edits: ScoreEdit) -> Iterator[None]:
    """Within the block, ``edits`` apply to every attention score the edited implementation computes."""
    token = _EDITS.set(_EDITS.get() + tuple(edits))
    try:
        yield
    finally:
        _EDITS.reset(token)


@contextlib.contextmanager
def contrast(item: Contrast) -> Iterator[None]:
    """Within the block, yes/no decisions come from ``item``'s combined logits."""
    token = _CONTRASTS.set(_CONTRASTS.get() + (item,))
    try:
        yield
    finally:
        _CONTRASTS.reset(token)


def prefix_safe(edit: ScoreEdit) -> ScoreEdit:
    """Mark ``edit`` as one that depends only on absolute positions (the image's, each row's prompt end), never on
    the rest of the forward: a cached image prefix computed under it equals the full prompt's, so questions may
    continue from one copy of the prefix (knockout, PAI, a planted starvation; not FastV, which ranks the image
    tokens from the last prompt position)."""
    edit.prefix_safe = True  # type: ignore[attr-defined]
    return edit


def is_prefix_safe(edit: ScoreEdit) -> bool:
    return bool(getattr(edit, "prefix_safe", False))


def active() -> tuple[ScoreEdit, ...]:
    """The attention edits in scope."""
    return _EDITS.get()


def editing() -> bool:
    """Whether an attention edit is active."""
    return bool(_EDITS.get())


def contrasts() -> tuple[Contrast, ...]:
    return _CONTRASTS.get()


@contextlib.contextmanager
def rows_of(image_spans: Sequence[Sequence[tuple[int, int]]], prompt_last: torch.Tensor, length: int) -> Iterator[None]:
    """Within the block, edits read this forward's image positions and prompt ends."""
    image = torch.zeros(len(image_spans), length, dtype=torch.bool)
    for row, spans in enumerate(image_spans):
        for start, end in spans:
            image[row, start:end] = True
    token = _ROWS.set(Rows(image, prompt_last.detach().long().cpu()))
    try:
        yield
    finally:
        _ROWS.reset(token)


def edit_scores(layer: int, scores: torch.Tensor, query_positions: torch.Tensor) -> torch.Tensor:
    """``scores`` [batch, heads, queries, keys] after every active edit (unchanged when none is active or the
    forward gave no rows)."""
    edits, rows = _EDITS.get(), _ROWS.get()
    if not edits or rows is None:
        return scores
    for edit in edits:
        scores = edit(layer, scores, query_positions.to(scores.device), rows)
    return scores


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return states
    batch, heads, tokens, dim = states.shape
    return states[:, :, None].expand(batch, heads, groups, tokens, dim).reshape(batch, heads * groups, tokens, dim)


def edited_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention with the active edits applied to the pre-softmax scores (transformers' attention
    interface: query/key/value [batch, heads, tokens, head_dim], an additive float mask)."""
    groups = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    n_queries, n_keys = query.shape[2], key.shape[2]
    positions = (torch.arange(n_queries, device=query.device) + (n_keys - n_queries)).expand(query.shape[0], -1)
    layer = getattr(module, "layer_idx", None)
    if layer is not None:
        scores = edit_scores(int(layer), scores, positions)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return output, probs


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, edited_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


@contextlib.contextmanager
def edited_implementation(config: Any) -> Iterator[None]:
    """Within the block the language model (``config``) attends through :func:`edited_attention`."""
    _register()
    previous = config._attn_implementation
    config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = previous
