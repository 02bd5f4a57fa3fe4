"""Finding the decoder layers and their self-attention inside any HF causal language model."""

from __future__ import annotations

import torch

from mmdiag.errors import CapabilityError

_LAYER_PATHS = ("layers", "model.layers", "decoder.layers", "model.decoder.layers", "transformer.h", "h")
_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")


def _get_path(root: torch.nn.Module, path: str) -> object | None:
    obj: object = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(language_model: torch.nn.Module) -> list[torch.nn.Module]:
    """The ordered decoder layers of a causal LM (Llama, Mistral, Qwen2, OPT, GPT-2 style trees)."""
    for path in _LAYER_PATHS:
        found = _get_path(language_model, path)
        if isinstance(found, torch.nn.ModuleList) and len(found) > 0:
            return list(found)
    raise CapabilityError(
        f"cannot find the decoder layers of {type(language_model).__name__} (looked for {', '.join(_LAYER_PATHS)}); "
        "subclass the family adapter and override lm_layers()"
    )


def self_attention(layer: torch.nn.Module) -> torch.nn.Module:
    """The self-attention module of one decoder layer."""
    for name in _ATTENTION_NAMES:
        module = getattr(layer, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise CapabilityError(
        f"cannot find the self-attention of {type(layer).__name__} (looked for {', '.join(_ATTENTION_NAMES)}); "
        "subclass the family adapter and override lm_attention_modules()"
    )
