"""Attention probabilities for a few query rows, recomputed from each layer's own q and k.

The main forward keeps its fast kernel (SDPA, flash): nothing of size layers x heads x N x N is ever
built. Forward hooks keep the outputs of each attention module's ``q_proj`` (only the query rows
asked for) and ``k_proj``; when the module finishes, the rows are recomputed exactly as the module
does — RoPE from the ``position_embeddings`` the module received (see :mod:`mmdiag.adapters.rotary`: the module's
own rotation, Llama 4's complex ``freqs_cis``, none on NoPE layers), per-head q/k norms where present (Qwen3-style
before RoPE, Llama 4's weightless ``qk_norm`` after it), Llama 4's query temperature tuning on NoPE layers, a gated
query's gate half dropped (Qwen3.5: ``q_proj`` emits ``[query | gate]`` per head; the gate scales the output, not the
probabilities), grouped-query heads repeated, the module's ``scaling``, the causal and padding mask, a sliding window
where configured, chunked attention where the layer's type is ``chunked_attention`` (Llama 4: chunks counted from
each row's first real token), a prefix-LM's bidirectional prefix (PaliGemma) or image blocks (Gemma 3: each view's
tokens attend to each other both ways, never to a later view's) — and handed to a reduction callback, then dropped.
Attention edits see the module's own ``layer_idx`` (the decoder-layer index the edited forward uses), so a family
whose attention modules are a subset of its layers (hybrid linear-attention models) edits and reads the same layers.

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
from mmdiag.adapters.rotary import rotate_query_and_keys
from mmdiag.errors import CapabilityError

RowCallback = Callable[[int, torch.Tensor], None]  # (layer index, probs [batch, heads, queries, keys])


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


def _blocks(prefix: torch.Tensor) -> torch.Tensor:
    """[batch, keys] block ids from a bool prefix-LM mask (one block: 0) or ids as given."""
    return torch.where(prefix, 0, -1) if prefix.dtype == torch.bool else prefix.long()


def _heads(module: torch.nn.Module) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim) of an attention module."""
    config = getattr(module, "config", None)
    head_dim = getattr(module, "head_dim", None) or config.hidden_size // config.num_attention_heads
    q_out = module.q_proj.out_features
    k_out = module.k_proj.out_features
    return q_out // head_dim // (2 if _gated_query(module) else 1), k_out // head_dim, head_dim


def _gated_query(module: torch.nn.Module) -> bool:
    """Does ``q_proj`` emit a query and an output gate per head (Qwen3-Next / Qwen3.5 gated attention)?"""
    config = getattr(module, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    head_dim = getattr(module, "head_dim", None)
    return bool(heads and head_dim and module.q_proj.out_features == 2 * heads * head_dim)


def _layer_index(module: torch.nn.Module, default: int) -> int:
    """The decoder-layer index of an attention module (what the edited forward passes to edits)."""
    layer = getattr(module, "layer_idx", None)
    return default if layer is None else int(layer)


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
        self.prefix = None if prefix is None else _blocks(prefix)  # [batch, keys]: bidirectional block ids, -1 causal
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
            probs = self.rows(module, q, k, kwargs, layer=_layer_index(module, index))
            self.callback(index, probs)

        return hook

    @torch.no_grad()
    def rows(
        self, module: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, kwargs: dict, layer: int | None = None
    ) -> torch.Tensor:
        n_q_heads, n_kv_heads, head_dim = _heads(module)
        batch, n_queries, _ = q.shape
        n_keys = k.shape[1]
        if _gated_query(module):  # [query | gate] per head: keep the query
            q = q.view(batch, n_queries, n_q_heads, 2 * head_dim)[..., :head_dim]
        q = q.reshape(batch, n_queries, n_q_heads, head_dim)
        k = k.view(batch, n_keys, n_kv_heads, head_dim)
        if isinstance(getattr(module, "q_norm", None), torch.nn.Module):
            q = module.q_norm(q)
        if isinstance(getattr(module, "k_norm", None), torch.nn.Module):
            k = module.k_norm(k)
        q, k = q.transpose(1, 2).float(), k.transpose(1, 2).float()  # [batch, heads, tokens, head_dim]
        positions = self.query_positions.to(q.device)
        q, k = rotate_query_and_keys(module, q, k, kwargs.get("position_embeddings"), positions)
        if isinstance(getattr(module, "qk_norm", None), torch.nn.Module):  # Llama 4: after RoPE, on RoPE layers
            q, k = module.qk_norm(q), module.qk_norm(k)
        if getattr(module, "attn_temperature_tuning", False) and not getattr(module, "use_rope", True):
            # Llama 4's NoPE layers scale each query by its position in the sequence (not its position id)
            scale = torch.log1p(torch.floor((positions.float() + 1.0) / module.floor_scale)) * module.attn_scale + 1.0
            q = q * scale[:, None, :, None]
        if n_q_heads != n_kv_heads:
            k = k.repeat_interleave(n_q_heads // n_kv_heads, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) * float(getattr(module, "scaling", head_dim**-0.5))
        scores = scores.masked_fill(~self._allowed(module, n_keys, q.device)[:, None], float("-inf"))
        if layer is not None:  # an intervention's edits (mmdiag.adapters.attention_edits), as the forward applied them
            scores = edit_scores(layer, scores, self.query_positions)
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)

    def _allowed(self, module: torch.nn.Module, n_keys: int, device: torch.device) -> torch.Tensor:
        """[batch, queries, keys]: causal (or both ways inside one block: a prefix-LM's prefix, a Gemma 3 view), not
        padding, inside the sliding window if the layer has one (one-sided, ANDed after the blocks, as transformers
        does), inside the query's chunk on a chunked layer."""
        keys = torch.arange(n_keys, device=device)
        positions = self.query_positions.to(device)
        allowed = keys[None, None, :] <= positions[:, :, None]
        if self.prefix is not None:
            blocks = self.prefix.to(device)[:, :n_keys]
            if blocks.shape[1] < n_keys:  # keys past the prefix's tokens (none in one forward): text
                blocks = torch.nn.functional.pad(blocks, (0, n_keys - blocks.shape[1]), value=-1)
            query_blocks = blocks.gather(1, positions)[:, :, None]
            allowed = allowed | ((blocks[:, None, :] == query_blocks) & (query_blocks >= 0))
        allowed = allowed & (self.key_mask.to(device)[:, None, :n_keys] > 0)
        window = sliding_window(module)
        if window:
            allowed &= keys[None, None, :] > positions[:, :, None] - int(window)
        chunk = _attention_chunk(module)
        if chunk:  # chunks start at each row's first real token (transformers' chunked_overlay)
            mask = self.key_mask.to(device)
            left = (mask.cumsum(dim=-1) == 0).sum(dim=-1)[:, None, None]  # [batch, 1, 1] left-padding tokens
            allowed &= torch.div(keys[None, None, :] - left, int(chunk), rounding_mode="floor") == torch.div(
                positions[:, :, None] - left, int(chunk), rounding_mode="floor"
            )
        return allowed


def sliding_window(module: torch.nn.Module) -> int | None:
    """The layer's window: its own attribute when it has one (Qwen2 sets it per layer type, None for full
    attention), else the config's (Mistral applies it to every layer)."""
    if hasattr(module, "sliding_window"):
        return module.sliding_window
    return getattr(getattr(module, "config", None), "sliding_window", None)


def _attention_chunk(module: torch.nn.Module) -> int | None:
    """The layer's attention chunk (Llama 4: layers whose type is ``chunked_attention``), else None."""
    config = getattr(module, "config", None)
    layer = getattr(module, "layer_idx", None)
    types = getattr(config, "layer_types", None)
    if layer is None or not types or types[int(layer)] != "chunked_attention":
        return None
    return getattr(config, "attention_chunk_size", None)


def eager_rows(
    forward: Callable[[], Any], attentions_of: Callable[[Any], Sequence[torch.Tensor]], query_positions: torch.Tensor
) -> list[torch.Tensor]:
    """Reference: run ``forward`` with materialised attentions and slice the query rows of each layer."""
    out = forward()
    rows = torch.arange(query_positions.shape[0])[:, None]
    return [a[rows, :, query_positions].transpose(1, 2).float() for a in attentions_of(out)]
