"""Attention probabilities for a few query rows, recomputed from each layer's own q and k.

The main forward keeps its fast kernel (SDPA, flash): nothing of size layers x heads x N x N is ever
built. Forward hooks keep the outputs of each attention module's ``q_proj`` (only the query rows
asked for) and ``k_proj``; when the module finishes, the rows are recomputed exactly as the module
does — RoPE from the ``position_embeddings`` the module received, per-head q/k norms where present
(Qwen3-style), grouped-query heads repeated, the module's ``scaling``, the causal and padding mask, a
sliding window where configured, a prefix-LM's bidirectional prefix (PaliGemma) — and handed to a reduction
callback, then dropped.

Served: decoder attention modules with ``q_proj``/``k_proj`` projections (Llama, Mistral, Qwen2/3,
Gemma-style RoPE models, OPT, ...). Models with attention-logit soft-capping or ALiBi are refused
with a clear error rather than measured wrongly. ``eager_rows`` is the reference path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from mmdiag.adapters.attention_edits import edit_scores
from mmdiag.adapters.capture import hooks
from mmdiag.errors import CapabilityError

RowCallback = Callable[[int, torch.Tensor], None]  # (layer index, probs [batch, heads, queries, keys])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _check_supported(module: torch.nn.Module) -> None:
    config = getattr(module, "config", None)
    for attr in ("attn_logit_softcapping", "alibi", "use_alibi"):
        if getattr(config, attr, None):
            raise CapabilityError(
                f"streamed attention rows do not support {attr} ({type(module).__name__}); use the eager reference path"
            )
    for name in ("q_proj", "k_proj"):
        if not isinstance(getattr(module, name, None), torch.nn.Module):
            raise CapabilityError(
                f"{type(module).__name__} has no {name}: streamed attention rows need q_proj/k_proj; "
                "use the eager reference path"
            )


def _heads(module: torch.nn.Module) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim) of an attention module."""
    config = getattr(module, "config", None)
    head_dim = getattr(module, "head_dim", None) or config.hidden_size // config.num_attention_heads
    q_out = module.q_proj.out_features
    k_out = module.k_proj.out_features
    return q_out // head_dim, k_out // head_dim, head_dim


class AttentionRows:
    """Recompute attention rows at ``query_positions`` ([batch, queries]) for every module in order.

    ``key_mask`` ([batch, keys], 1 = real token) is the batch's attention mask. ``callback(layer, probs)``
    receives float32 probabilities [batch, heads, queries, keys] (zero where masked) once per layer.
    """

    def __init__(
        self,
        modules: Sequence[torch.nn.Module],
        query_positions: torch.Tensor,
        key_mask: torch.Tensor,
        callback: RowCallback,
        prefix: torch.Tensor | None = None,
    ) -> None:
        for module in modules:
            _check_supported(module)
        self.modules = list(modules)
        self.query_positions = query_positions.long()
        self.key_mask = key_mask.long()
        self.callback = callback
        self.prefix = None if prefix is None else prefix.bool()  # [batch, keys]: a prefix-LM's bidirectional block
        self._q: dict[int, torch.Tensor] = {}
        self._k: dict[int, torch.Tensor] = {}

    def _pairs(self) -> list[tuple[torch.nn.Module, Callable]]:
        pairs: list[tuple[torch.nn.Module, Callable]] = []
        for index, module in enumerate(self.modules):
            pairs.append((module.q_proj, self._keep_q(index)))
            pairs.append((module.k_proj, self._keep_k(index)))
            pairs.append((module, self._finish(index)))
        return pairs

    @contextlib.contextmanager
    def active(self) -> Iterator[AttentionRows]:
        """Within the block every forward through the modules reports its rows to the callback."""
        with hooks(self._pairs()):
            try:
                yield self
            finally:
                self._q.clear()
                self._k.clear()

    def _keep_q(self, index: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            positions = self.query_positions.to(output.device)
            rows = torch.arange(output.shape[0], device=output.device)[:, None]
            self._q[index] = output[rows, positions].detach()  # [batch, queries, q_out]

        return hook

    def _keep_k(self, index: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            self._k[index] = output.detach()  # [batch, keys, k_out]

        return hook

    def _finish(self, index: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            q, k = self._q.pop(index), self._k.pop(index)
            probs = self.rows(module, q, k, kwargs, layer=index)
            self.callback(index, probs)

        return hook

    @torch.no_grad()
    def rows(
        self, module: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, kwargs: dict, layer: int | None = None
    ) -> torch.Tensor:
        n_q_heads, n_kv_heads, head_dim = _heads(module)
        batch, n_queries, _ = q.shape
        n_keys = k.shape[1]
        q = q.view(batch, n_queries, n_q_heads, head_dim)
        k = k.view(batch, n_keys, n_kv_heads, head_dim)
        if isinstance(getattr(module, "q_norm", None), torch.nn.Module):
            q = module.q_norm(q)
        if isinstance(getattr(module, "k_norm", None), torch.nn.Module):
            k = module.k_norm(k)
        q, k = q.transpose(1, 2).float(), k.transpose(1, 2).float()  # [batch, heads, tokens, head_dim]
        rotary = kwargs.get("position_embeddings")
        if rotary is not None:
            cos, sin = (t.float().to(q.device).expand(batch, -1, -1) for t in rotary)  # [batch, keys, rotary_dim]
            positions = self.query_positions.to(q.device)
            rows = torch.arange(batch, device=q.device)[:, None]
            q = _apply_rotary(q, cos[rows, positions].unsqueeze(1), sin[rows, positions].unsqueeze(1))
            k = _apply_rotary(k, cos.unsqueeze(1), sin.unsqueeze(1))
        if n_q_heads != n_kv_heads:
            k = k.repeat_interleave(n_q_heads // n_kv_heads, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) * float(getattr(module, "scaling", head_dim**-0.5))
        scores = scores.masked_fill(~self._allowed(module, n_keys, q.device)[:, None], float("-inf"))
        if layer is not None:  # an intervention's edits (mmdiag.adapters.attention_edits), as the forward applied them
            scores = edit_scores(layer, scores, self.query_positions)
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)

    def _allowed(self, module: torch.nn.Module, n_keys: int, device: torch.device) -> torch.Tensor:
        """[batch, queries, keys]: causal (or both inside a prefix-LM's prefix), not padding, inside the sliding
        window if the layer has one."""
        keys = torch.arange(n_keys, device=device)
        positions = self.query_positions.to(device)
        allowed = keys[None, None, :] <= positions[:, :, None]
        if self.prefix is not None:
            prefix = self.prefix.to(device)[:, :n_keys]
            allowed = allowed | (prefix[:, None, :] & prefix.gather(1, positions)[:, :, None])
        allowed = allowed & (self.key_mask.to(device)[:, None, :n_keys] > 0)
        window = _sliding_window(module)
        if window:
            allowed &= keys[None, None, :] > positions[:, :, None] - int(window)
        return allowed


def _sliding_window(module: torch.nn.Module) -> int | None:
    """The layer's window: its own attribute when it has one (Qwen2 sets it per layer type, None for full
    attention), else the config's (Mistral applies it to every layer)."""
    if hasattr(module, "sliding_window"):
        return module.sliding_window
    return getattr(getattr(module, "config", None), "sliding_window", None)


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on the first ``cos.shape[-1]`` dims (partial rotary keeps the rest), as transformers does."""
    dim = cos.shape[-1]
    rotated, rest = x[..., :dim], x[..., dim:]
    return torch.cat((rotated * cos + _rotate_half(rotated) * sin, rest), dim=-1)


def eager_rows(
    forward: Callable[[], Any], attentions_of: Callable[[Any], Sequence[torch.Tensor]], query_positions: torch.Tensor
) -> list[torch.Tensor]:
    """Reference: run ``forward`` with materialised attentions and slice the query rows of each layer."""
    out = forward()
    rows = torch.arange(query_positions.shape[0])[:, None]
    return [a[rows, :, query_positions].transpose(1, 2).float() for a in attentions_of(out)]
