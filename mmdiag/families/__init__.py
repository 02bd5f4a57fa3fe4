"""Every model family mmdiag serves, described as data: one small declaration per family.

A declaration (:class:`Family`, in ``mmdiag/families/<name>.py`` as ``FAMILY``, or from an installed package's
``mmdiag.families`` entry point) says which ``config.architectures`` the family matches, which adapter reads it,
how its image tokens sit (one patch grid, tokens each placed on the image, learned queries, one pooled embedding),
its attention mask, what a probe cannot do on it, the packages its processor needs, the oldest transformers it
needs, and the tiny random checkpoints that test it. Everything else is derived from the declarations: the adapter
registry, ``mmdiag tiny``'s choices, the README's support table and the contract tests' matrix. Code lives in the
adapter only where a family truly differs (a traced token layout, positions that need the whole input).

This module imports nothing heavy: the CLI reads the tiny families' names from it at start-up.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points

from mmdiag.lazy_registry import RegistryError

ENTRY_POINT_GROUP = "mmdiag.families"

TOKEN_LAYOUTS = {
    "grid": "one patch grid",
    "regions": "each token placed on the image",
    "queries": "learned queries (no place on the image)",
    "pooled": "one pooled embedding",
}
DEFAULT_MODULES = {
    "vision_encoder": "model.vision_tower",
    "projector": "model.multi_modal_projector",
    "language_model": "model.language_model",
}
"""Where transformers 5 puts the canonical parts of an image-text-to-text model (paths from the top-level model)."""
ATTENTION_MASKS = {
    "causal": "causal",
    "prefix-lm": "prefix-LM (image + prompt both ways)",
    "bidirectional-image": "causal, image tokens both ways",
    "chunked": "causal, chunked in some layers",
    "hybrid-linear": "causal; linear-attention layers between softmax ones",
    "encoder-decoder": "T5 encoder (both ways) + decoder",
    "none": "no language model",
}


@dataclass(frozen=True)
class TinyBuild:
    """A tiny random checkpoint of a family (``mmdiag tiny NAME``) and what the contract tests expect of it.

    ``builder`` is a lazy ``"module:function"`` called as ``function(out_dir, spec, **options)``; ``stage_tokens``
    and ``stage_width`` are the last feature stage's tokens per image and width at the default
    :class:`~mmdiag.checkpoints.tiny_parts.TinySpec` (``None``: the spec's hidden size)."""

    name: str
    builder: str
    options: Mapping[str, object] = field(default_factory=dict)
    stage_tokens: int = 16
    stage_width: int | None = None


@dataclass(frozen=True)
class Family:
    """One family: see the module docstring. ``tokens`` is a key of :data:`TOKEN_LAYOUTS`, ``attention`` of
    :data:`ATTENTION_MASKS`; ``stages`` are the feature stages in order; ``modules`` the paths of the canonical parts
    that differ from :data:`DEFAULT_MODULES` (tower / connector / LM families); ``limits`` say what a probe cannot
    do."""

    name: str
    title: str
    architectures: tuple[str, ...]
    adapter: str
    tiny: tuple[TinyBuild, ...]
    kind: str = "generative"
    tokens: str = "regions"
    attention: str = "causal"
    stages: tuple[str, ...] = ("vision_encoder", "projector")
    modules: Mapping[str, str] = field(default_factory=dict)  # canonical part -> path, over DEFAULT_MODULES
    limits: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    min_transformers: str | None = "5.0"  # None: the family does not run on transformers

    def __post_init__(self) -> None:
        if self.tokens not in TOKEN_LAYOUTS:
            raise RegistryError(f"family '{self.name}': tokens={self.tokens!r}; use one of {', '.join(TOKEN_LAYOUTS)}")
        if self.attention not in ATTENTION_MASKS:
            raise RegistryError(
                f"family '{self.name}': attention={self.attention!r}; use one of {', '.join(ATTENTION_MASKS)}"
            )


def _builtin_modules() -> list[str]:
    return sorted(f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def collect(declarations: list[tuple[Family, str]]) -> dict[str, Family]:
    """Family name -> declaration, refusing a family name, an architecture or a tiny checkpoint's name declared
    twice (one line naming both providers), and a family with no tiny checkpoint to test it."""
    families: dict[str, Family] = {}
    owners: dict[str, str] = {}
    for family, provider in declarations:
        if not family.tiny:
            raise RegistryError(
                f"family '{family.name}' ({provider}) declares no tiny checkpoint: add a TinyBuild with its builder, "
                "so the contract tests can load it by path"
            )
        keys = [("family", family.name)]
        keys += [("architecture", a) for a in family.architectures]
        keys += [("tiny checkpoint", t.name) for t in family.tiny]
        for what, key in keys:
            held = owners.get(f"{what}:{key}")
            if held is not None:
                raise RegistryError(f"{what} '{key}' is declared twice: by {held} and by {provider}; rename one")
            owners[f"{what}:{key}"] = provider
        families[family.name] = family
    return families


@cache
def declared() -> dict[str, Family]:
    """Every built-in declaration plus every installed ``mmdiag.families`` entry point (name -> family)."""
    found = []
    for module in _builtin_modules():
        found.append((importlib.import_module(module).FAMILY, f"mmdiag ({module})"))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.append((entry.load(), f"entry point {entry.group}: {entry.value}"))
    return collect(found)


def tiny_builds() -> dict[str, TinyBuild]:
    """Every tiny checkpoint of every declared family, by name."""
    return {tiny.name: tiny for family in declared().values() for tiny in family.tiny}


def family_of_tiny(name: str) -> Family:
    """The declared family a tiny checkpoint belongs to."""
    return next(f for f in declared().values() if any(t.name == name for t in f.tiny))


def family_of_architecture(architecture: str) -> Family | None:
    """The declared family matching ``architecture``, or ``None`` (e.g. an adapter added by entry point only)."""
    return next((f for f in declared().values() if architecture in f.architectures), None)


def module_paths(architecture: str) -> dict[str, str]:
    """Canonical part -> path from the top-level model, for the family declaring ``architecture`` (the defaults for
    an architecture no declaration names)."""
    family = family_of_architecture(architecture)
    return {**DEFAULT_MODULES, **(dict(family.modules) if family is not None else {})}


def adapter_targets() -> dict[str, str]:
    """``config.architectures`` name -> lazy adapter target, for the adapter registry's built-ins."""
    return {arch: family.adapter for family in declared().values() for arch in family.architectures}
