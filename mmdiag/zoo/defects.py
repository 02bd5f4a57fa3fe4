"""Planted defects: known-broken variants of a trained model, to prove that each release gate can fail.

Each defect edits a loaded model in place through the adapter's canonical modules (no retraining), so it
applies to every zoo model and to any checkpoint of a family that exposes those modules:

- ``image-blind``: the projector's output is replaced by its output for one mid-grey image, so every image
  becomes the same tokens (the model cannot see);
- ``shuffled-image-tokens``: each image's tokens are permuted across positions with a permutation drawn from
  the image itself (content kept, layout destroyed);
- ``untrained-vision-encoder``: the vision encoder's weights are replaced by a fresh initialisation (the
  projector and LLM keep their training);
- ``text-only-lm``: image-token positions are masked out of the language model's attention (the image tokens
  are there, but nothing reads them);
- ``attention-starved``: every pre-softmax attention score to an image token is lowered by a constant in every LLM
  layer (the image is read, but weakly: the "language-colonised" symptom PAI sets out to remedy).

The zoo's ``ref-llava-biased`` (a co-occurrence prior trained in) is the fifth defect; it is a model, not an
edit. The hooks stay on the model for its lifetime: a planted model is broken on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import Adapter
from mmdiag.errors import CapabilityError, ConfigError


def _grey_tokens(adapter: Adapter, module: torch.nn.Module | None = None) -> torch.Tensor:
    """The output of ``module`` (default: the projector module) for one mid-grey image."""
    seen: list[torch.Tensor] = []
    module = adapter.projector_module() if module is None else module
    handle = module.register_forward_hook(lambda m, a, out: seen.append(_tensor(out).detach()))
    try:
        adapter.feature_stages([Image.new("RGB", (64, 64), (128, 128, 128))])
    finally:
        handle.remove()
    return seen[-1]


def _tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def image_blind(adapter: Adapter) -> None:
    """Every image becomes the connectors' tokens for a mid-grey image (every connector: Qwen3-VL's DeepStack
    mergers carry the image too)."""
    for module, _ in adapter.connector_modules():
        constant = _grey_tokens(adapter, module)

        def same_tokens(
            module: torch.nn.Module, args: Any, output: Any, constant: torch.Tensor = constant
        ) -> torch.Tensor:
            out = _tensor(output)
            grey = constant.to(out.device, out.dtype)
            if out.dim() == grey.dim() == 2 and out.shape[0] % grey.shape[0] == 0:  # Qwen: images' tokens flattened
                return grey.repeat(out.shape[0] // grey.shape[0], 1)
            return grey.expand(out.shape[0], *grey.shape[1:]).clone()

        module.register_forward_hook(same_tokens)


def shuffled_image_tokens(adapter: Adapter) -> None:
    """Each image's tokens permuted across positions, the permutation seeded by the image's own tokens."""

    def shuffle(module: torch.nn.Module, args: Any, output: Any) -> torch.Tensor:
        out = _tensor(output)
        if out.dim() != 3:
            raise CapabilityError(f"{adapter.family} image features are not a token sequence: nothing to shuffle")
        rows = []
        for row in out:
            generator = torch.Generator().manual_seed(int(round(float(row.float().abs().sum()))) % (2**31))
            rows.append(row[torch.randperm(row.shape[0], generator=generator).to(row.device)])
        return torch.stack(rows)

    adapter.projector_module().register_forward_hook(shuffle)


def untrained_vision_encoder(adapter: Adapter, seed: int = 0) -> None:
    """The vision encoder's weights replaced by those of a freshly initialised copy of the model."""
    fresh = adapter.untrained_copy(seed).vision_encoder_module().state_dict()
    with torch.no_grad():
        adapter.vision_encoder_module().load_state_dict(fresh)


def text_only_lm(adapter: Adapter) -> None:
    """Image-token positions masked out of the language model's attention mask.

    The top-level forward sees ``input_ids`` and records where the image tokens are; the language model's
    forward (also when it continues from a KV cache of that prefix, whatever the batch, and when questions
    are packed behind one prefix under a 4D mask) gets an attention mask with those positions closed.
    """
    image_id = adapter.image_token_id  # generative adapters only
    state: dict[str, torch.Tensor | None] = {"image": None}

    def record(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is not None and bool((ids == image_id).any()):
            state["image"] = ids == image_id

    def mask(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        attention, image = kwargs.get("attention_mask"), state["image"]
        if attention is None or image is None or attention.dim() not in (2, 4) or attention.shape[-1] < image.shape[1]:
            return None
        if image.shape[0] not in (1, attention.shape[0]):
            if not bool((image == image[:1]).all()):
                return None
            image = image[
                :1
            ]  # every prefix row holds its image at the same positions (a batched KV-cache continuation)
        if attention.dim() == 4:  # packed questions: an additive (or boolean) [batch, 1, query, key] mask
            return args, {**kwargs, "attention_mask": _mask_keys(attention, image)}
        attention = attention.clone()
        prefix = image.shape[1]
        attention[:, :prefix] = attention[:, :prefix] * (~image).to(attention.device, attention.dtype)
        return args, {**kwargs, "attention_mask": attention}

    adapter.model.register_forward_pre_hook(record, with_kwargs=True)
    adapter.language_model_module().register_forward_pre_hook(mask, with_kwargs=True)


def _mask_keys(attention: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A 4D ``[batch, 1, query, key]`` mask with the image positions (the first keys) closed to every query."""
    keys = torch.zeros(image.shape[0], attention.shape[-1], dtype=torch.bool, device=attention.device)
    keys[:, : image.shape[1]] = image.to(attention.device)
    keys = keys[:, None, None, :]
    if attention.dtype == torch.bool:  # True = may attend
        return attention & ~keys
    return attention.masked_fill(keys, torch.finfo(attention.dtype).min)


STARVATION = 3.0  # the attention-starved defect's drop of the image keys' scores (a factor e^3 = 20 in weight)


def attention_starved(adapter: Adapter, drop: float = STARVATION) -> None:
    """Every LLM layer's pre-softmax scores to image-token keys lowered by ``drop`` (for every query and head)."""
    from mmdiag.adapters.attention_edits import Rows, prefix_safe

    if not hasattr(adapter, "planted_edits") or getattr(adapter, "is_encoder_decoder", False):
        raise CapabilityError(
            f"{adapter.family} models have no decoder self-attention over image tokens to starve (attention-starved "
            "applies to decoder-only generative models)"
        )

    def starve(layer: int, scores: torch.Tensor, queries: torch.Tensor, rows: Rows) -> torch.Tensor:
        image = rows.image_keys(scores.shape[-1], scores.device)
        return scores - drop * image[:, None, None, :].to(scores.dtype)

    adapter.planted_edits = (*adapter.planted_edits, prefix_safe(starve))


DEFECTS: dict[str, Callable[[Adapter], None]] = {
    "image-blind": image_blind,
    "shuffled-image-tokens": shuffled_image_tokens,
    "untrained-vision-encoder": untrained_vision_encoder,
    "text-only-lm": text_only_lm,
    "attention-starved": attention_starved,
}


def check_defect_name(name: str) -> None:
    if name not in DEFECTS:
        raise ConfigError(f"unknown defect '{name}': choose one of {', '.join(DEFECTS)}")


def plant_defect(adapter: Adapter, name: str) -> Adapter:
    """Plant the named defect into ``adapter``'s model (in place) and return the adapter."""
    check_defect_name(name)
    try:
        DEFECTS[name](adapter)
    except AttributeError as err:
        raise CapabilityError(f"defect '{name}' cannot be planted into a {adapter.family} model ({err})") from err
    return adapter
