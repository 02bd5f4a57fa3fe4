"""The intervention contract: a named, parameterised change to how a model computes, applied in a scope.

An intervention's ``__init__`` takes its parameters as strings or values (``knockout:layers=0-3,from=last`` on the
command line) and validates them before any model loads; :meth:`Intervention.unsupported_reason` says why it cannot
apply to a loaded adapter; :meth:`Intervention.applied` is a context manager that installs it (an attention-score
edit, a decision-level contrast: :mod:`mmdiag.adapters.attention_edits`) and removes it in ``finally``. Every
parameter has its paper's default, so ``--intervene vcd`` works bare.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from mmdiag.adapters.base import GENERATIVE, Adapter
from mmdiag.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter: its default, how a value is read (``parse(text) -> value``, raising ValueError with the
    reason) and what it means."""

    default: Any
    parse: Callable[[Any], Any]
    help: str


class Intervention(abc.ABC):
    """Base of every intervention. Subclasses set ``name``, ``description``, ``reference`` (the paper and the
    code its arithmetic follows) and ``params``."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ConfigError(
                f"intervention '{self.name}' has no parameter {', '.join(unknown)} (its parameters: {known})"
            )
        self.values: dict[str, Any] = {}
        for key, param in self.params.items():
            raw = values.get(key, param.default)
            try:
                self.values[key] = param.parse(raw)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"intervention '{self.name}': {key}={raw} is not valid: {err}") from err

    def spec(self) -> str:
        """``name:k=v,...`` with every parameter, as the run records it (its identity)."""
        return (
            f"{self.name}:" + ",".join(f"{k}={_text(v)}" for k, v in self.values.items()) if self.values else self.name
        )

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        """Why this intervention cannot apply to ``adapter`` (``None`` when it can); the default: an audit from
        answers has no model to change."""
        if not getattr(adapter, "has_weights", True):
            return "an audit from answers has no model to change: intervene where the answers are produced"
        return None

    @abc.abstractmethod
    def applied(self, adapter: Adapter) -> contextlib.AbstractContextManager[None]:
        """A context manager within which ``adapter`` computes with the intervention."""

    @property
    def contrasts_decisions(self) -> bool:
        """Whether it decides yes/no from logits contrasted with another input's (VCD, PAI): at most one may."""
        return False

    def note(self) -> str:
        """One line for the run's notes: what was changed, with every parameter."""
        return f"intervention {self.spec()}: {self.description}"


class AttentionEdit(Intervention):
    """An intervention that edits the language model's self-attention over image tokens: it needs a generative,
    decoder-only model with weights (subclasses add their own limits in :meth:`layer_reason`)."""

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        if (reason := super().unsupported_reason(adapter)) is not None:
            return reason
        if adapter.kind != GENERATIVE:
            return "needs a language model that attends to image tokens (a generative model)"
        if getattr(adapter, "is_encoder_decoder", False):
            return "encoder-decoder language models (T5) read the image through cross-attention: not supported yet"
        return self.layer_reason(len(adapter.lm_layers()))

    def layer_reason(self, n_layers: int) -> str | None:
        """Why the parameters do not fit a language model of ``n_layers`` layers, or ``None``."""
        return None


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def number(low: float, high: float, integer: bool = False) -> Callable[[Any], Any]:
    """A parser of a number in [low, high]."""

    def parse(raw: Any) -> Any:
        value = int(raw) if integer else float(raw)
        if not low <= value <= high:
            raise ValueError(f"must lie in [{low:g}, {high:g}]")
        return value

    return parse


def choice(*options: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if str(raw) not in options:
            raise ValueError(f"choose from {', '.join(options)}")
        return str(raw)

    return parse


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield
