"""Rotary position embeddings as each attention module applies them, for recomputing its attention rows.

Transformers' families rotate q and k in different ways: Llama's half split, Cohere's interleaved pairs, GLM-4V's
interleaved pairs of a partial slice, Llama 4's complex ``freqs_cis``, and some layers apply none at all (Cohere2's
full-attention layers, ``use_rope`` false in SmolLM3 / Llama 4). The module's own modeling file is the reference: its
``apply_rotary_pos_emb`` is called where it has the common signature, else its ``rotate_half``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch

# attention classes that skip RoPE on some layers without a ``use_rope`` attribute: whether a module applies none
_NO_ROPE: dict[str, Callable[[torch.nn.Module], bool]] = {
    "Cohere2Attention": lambda module: getattr(module, "sliding_window", None) is None,  # full layers are NoPE
}


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotate_of(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ``rotate_half`` the module's own modeling file applies (Llama's half split, Cohere's interleave), or
    ``None`` for a layer without RoPE."""
    no_rope = _NO_ROPE.get(type(module).__name__)
    if (no_rope is not None and no_rope(module)) or not getattr(module, "use_rope", True):
        return None
    own = getattr(sys.modules.get(type(module).__module__), "rotate_half", None)
    return own if callable(own) else _rotate_half


def rotate_query_and_keys(
    module: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, rotary: Any, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` [batch, heads, queries, dim] at ``positions`` [batch, queries] and ``k`` [batch, heads, keys, dim]
    rotated as ``module`` rotates them, given the ``position_embeddings`` it received (unchanged on a NoPE layer)."""
    rotate = _rotate_of(module)
    if rotary is None or rotate is None:
        return q, k
    batch = q.shape[0]
    rows = torch.arange(batch, device=q.device)[:, None]
    if isinstance(rotary, torch.Tensor) and rotary.is_complex():  # Llama 4: freqs_cis [batch, keys, dim / 2]
        freqs = rotary.to(q.device).expand(batch, -1, -1)
        return _complex_rotary(q, freqs[rows, positions].unsqueeze(1)), _complex_rotary(k, freqs.unsqueeze(1))
    cos, sin = (t.float().to(q.device).expand(batch, -1, -1) for t in rotary)  # [batch, keys, rotary_dim]
    rope = _model_rope(module)
    if rope is not None:  # the module's own: q and k rows sit at different positions, so one at a time
        return rope(q, q, cos[rows, positions], sin[rows, positions])[0], rope(k, k, cos, sin)[0]
    q = _apply_rotary(q, cos[rows, positions].unsqueeze(1), sin[rows, positions].unsqueeze(1), rotate)
    return q, _apply_rotary(k, cos.unsqueeze(1), sin.unsqueeze(1), rotate)


def _model_rope(module: torch.nn.Module) -> Callable | None:
    """The attention module's modeling file's ``apply_rotary_pos_emb(q, k, cos, sin, ..., unsqueeze_dim=1)``: the
    function its forward applies (rotation layout and partial rotary as the model does them: GLM-4V rotates
    interleaved pairs of a partial slice), else ``None``."""
    fn = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)
    if not callable(fn):
        return None
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return fn if names[:4] == ["q", "k", "cos", "sin"] and "unsqueeze_dim" in names else None


def _complex_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Llama 4's RoPE: consecutive pairs of ``x`` [..., head_dim] as complex numbers times ``freqs`` [..., dim / 2]."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(pairs * freqs).flatten(-2)


def _apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotate: Callable[[torch.Tensor], torch.Tensor] = _rotate_half
) -> torch.Tensor:
    """RoPE on the first ``cos.shape[-1]`` dims (partial rotary keeps the rest), as transformers does."""
    dim = cos.shape[-1]
    rotated, rest = x[..., :dim], x[..., dim:]
    return torch.cat((rotated * cos + rotate(rotated) * sin, rest), dim=-1)
