"""Activation patching with a scene's mirror image: its projector output, or its image tokens' hidden states from one
LLM layer on, put in place of the scene's (scoped hooks, removed in ``finally``).

A recording run on the mirror image keeps, call by call, the projector's output and each LLM layer's input hidden
states; a patched run on the scene repeats the same computation (same questions, same image size, so the same calls
in the same order) and replaces the k-th call's values by the recording's k-th. Image positions are read from each
forward's ``input_ids`` (the adapter's image token id); forwards without image tokens (a cached prefix's
continuation) are left alone. Under causal attention the image tokens read only the image and the text before it,
which both runs share, so patching at layer l's input makes the image tokens the mirror's in every layer from l on,
while the text has read the scene's image in the layers before l.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Recording:
    """The mirror run's projector outputs and per-layer input hidden states, call by call."""

    projector: list[torch.Tensor] = field(default_factory=list)
    layers: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    connectors: dict[int, list[torch.Tensor]] = field(default_factory=dict)  # further connectors (DeepStack), by index


def _tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@contextlib.contextmanager
def _image_positions(adapter: Any) -> Iterator[dict[str, torch.Tensor | None]]:
    """Within the block ``state["image"]`` is the current forward's [batch, tokens] image-token mask (or None)."""
    state: dict[str, torch.Tensor | None] = {"image": None}
    image_id = adapter.image_token_id

    def record(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        state["image"] = ids == image_id if ids is not None and bool((ids == image_id).any()) else None

    handle = adapter.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield state
    finally:
        handle.remove()


def _hidden(args: Any, kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: Any, kwargs: dict[str, Any], hidden: torch.Tensor) -> tuple[Any, dict[str, Any]]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@contextlib.contextmanager
def recording(adapter: Any) -> Iterator[Recording]:
    """Within the block every projector output and LLM layer input is kept in the yielded :class:`Recording`."""
    kept = Recording()
    handles = []

    def projector(module: torch.nn.Module, args: Any, output: Any) -> None:
        kept.projector.append(_tensor(output).detach().clone())

    def layer_hook(index: int) -> Any:
        def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
            kept.layers.setdefault(index, []).append(_hidden(args, kwargs).detach().clone())

        return hook

    def connector(index: int) -> Any:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            kept.connectors.setdefault(index, []).append(_tensor(output).detach().clone())

        return hook

    try:
        handles.append(adapter.projector_module().register_forward_hook(projector))
        for index, (module, _) in enumerate(adapter.connector_modules()[1:], start=1):
            handles.append(module.register_forward_hook(connector(index)))
        for index, layer in enumerate(adapter.lm_layers()):
            handles.append(layer.register_forward_pre_hook(layer_hook(index), with_kwargs=True))
        yield kept
    finally:
        for handle in handles:
            handle.remove()


class PatchMismatch(RuntimeError):
    """The patched run's computation does not repeat the recording's."""


@contextlib.contextmanager
def patched(adapter: Any, kept: Recording, layer: int | None) -> Iterator[None]:
    """Within the block the recording replaces the projector's output (``layer=None``) or the image positions' input
    hidden states of LLM layer ``layer``."""
    calls = {"n": 0}
    handles = []

    def projector(module: torch.nn.Module, args: Any, output: Any) -> Any:
        tensor = _tensor(output)
        source = _next(kept.projector, calls, tensor)
        return (source, *output[1:]) if isinstance(output, tuple) else source

    def connector(index: int) -> Any:
        counted = {"n": 0}

        def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
            tensor = _tensor(output)
            source = _next(kept.connectors.get(index, []), counted, tensor)
            return (source, *output[1:]) if isinstance(output, tuple) else source

        return hook

    try:
        # connectors read after the patched point (all of them for the projector, DeepStack's later additions for a
        # layer) must carry the mirror's image too, or the scene's image re-enters the image positions
        for index, (module, reads) in enumerate(adapter.connector_modules()[1:], start=1):
            if layer is None or reads > layer:
                handles.append(module.register_forward_hook(connector(index)))
        if layer is None:
            handles.append(adapter.projector_module().register_forward_hook(projector))
            yield
            return
        with _image_positions(adapter) as state:

            def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> Any:
                hidden = _hidden(args, kwargs)
                source = _next(kept.layers.get(layer, []), calls, hidden)
                image = state["image"]
                if image is None or image.shape != hidden.shape[:2]:
                    return None
                mixed = torch.where(image.to(hidden.device)[:, :, None], source, hidden)
                return _with_hidden(args, kwargs, mixed)

            handles.append(adapter.lm_layers()[layer].register_forward_pre_hook(hook, with_kwargs=True))
            yield
    finally:
        for handle in handles:
            handle.remove()


def _next(kept: list[torch.Tensor], calls: dict[str, int], like: torch.Tensor) -> torch.Tensor:
    if calls["n"] >= len(kept) or kept[calls["n"]].shape != like.shape:
        raise PatchMismatch("the patched run does not repeat the mirror run's computation (shapes or calls differ)")
    source = kept[calls["n"]].to(like.device, like.dtype)
    calls["n"] += 1
    return source
