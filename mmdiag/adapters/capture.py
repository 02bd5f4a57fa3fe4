"""Scoped forward hooks: registered on entry, removed in ``finally`` whatever happens inside.

``hooks`` is the primitive; ``capture_io`` records what named modules receive and return during a
forward (used for stage features). Reductions that must not keep big tensors (attention) pass their
own hook functions to ``hooks`` and keep only what they reduce to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Hook = Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any], Any], None]


@contextlib.contextmanager
def hooks(pairs: Sequence[tuple[torch.nn.Module, Hook]]) -> Iterator[None]:
    """Register ``hook(module, args, kwargs, output)`` forward hooks; always remove them on exit."""
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Captured:
    """Inputs and outputs seen by hooked modules, by the name they were registered under."""

    args: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def first_input(self, name: str) -> torch.Tensor:
        """The module's first positional tensor input."""
        return self.args[name][0]

    def output_tensor(self, name: str) -> torch.Tensor:
        """The module's output tensor (the first element of a tuple, or ``last_hidden_state``)."""
        out = self.outputs[name]
        if isinstance(out, torch.Tensor):
            return out
        if hasattr(out, "last_hidden_state"):
            return out.last_hidden_state
        return out[0]


@contextlib.contextmanager
def capture_io(modules: Mapping[str, torch.nn.Module]) -> Iterator[Captured]:
    """Record the (detached) inputs and output of each named module during the block."""
    captured = Captured()

    def make_hook(name: str) -> Hook:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            captured.args[name] = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
            captured.kwargs[name] = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            captured.outputs[name] = output

        return hook

    with hooks([(module, make_hook(name)) for name, module in modules.items()]):
        yield captured
