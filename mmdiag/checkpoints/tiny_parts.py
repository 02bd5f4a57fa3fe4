"""What every tiny checkpoint builder shares: the geometry, CLIP's pixel statistics, a vision tower's and a
Llama's tiny configs (kept apart from :mod:`mmdiag.checkpoints.tiny`, which dispatches to the family builders)."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class TinySpec:
    """Geometry of a tiny model: images of ``image_size`` px cut in ``patch_size`` patches."""

    image_size: int = 32
    patch_size: int = 8
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    num_query_tokens: int = 4
    seed: int = 0


def vision_kwargs(spec: TinySpec) -> dict:
    return dict(
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )


def text_kwargs(tokenizer, spec: TinySpec, **overrides: object) -> dict:  # noqa: ANN001 - a transformers tokenizer
    """The decoder LM config keywords every tiny family shares (``spec``'s depth, width and grouped-query heads over
    ``tokenizer``'s vocabulary and special ids); ``overrides`` replace or add keywords."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden,
        "intermediate_size": spec.hidden * 2,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **overrides,
    }


def native_vision_kwargs(spec: TinySpec, **overrides: object) -> dict:
    """A native-resolution tower's config keywords (Qwen2-VL's lineage: 2x2 merge windows, 2-frame patches)."""
    return {
        "depth": spec.layers,
        "hidden_size": spec.hidden,
        "num_heads": 2,
        "patch_size": spec.patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        **overrides,
    }


def native_pixels(spec: TinySpec, frames: int = 1, **overrides: object) -> dict:
    """Image-processor keywords for a native-resolution tower: areas from 2x2 to 16x16 merged patches."""
    return {
        "size": {
            "shortest_edge": frames * (2 * spec.patch_size) ** 2,
            "longest_edge": frames * (16 * spec.patch_size) ** 2,
        },
        "patch_size": spec.patch_size,
        "merge_size": 2,
        "temporal_patch_size": 2,
        **overrides,
    }


def llama_config(tokenizer, spec: TinySpec, max_positions: int = 512):  # noqa: ANN001, ANN201 - transformers types
    """A tiny Llama language model over ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig

    return LlamaConfig(**text_kwargs(tokenizer, spec, max_position_embeddings=max_positions))


def alternating_layers(spec: TinySpec, first: str) -> list[str]:
    """Layer types for a model that mixes a local layer kind (``first``) with full attention: the first layer
    ``first``, the rest ``full_attention`` (both kinds present in a 2-layer tiny)."""
    return [first] + ["full_attention"] * (spec.layers - 1)
