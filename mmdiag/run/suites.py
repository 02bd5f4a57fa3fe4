"""Audit suites: declarative YAML files (top-level ``probes/``) that say what an audit runs and gates.

A suite names its probes (with parameters), the scene set (count, seed, recipe), the batch size and the
release gates. Every key is validated; a mistake is a one-line ConfigError naming the file, the key and
what is allowed. ``probes/release.yaml`` is the default suite. The package ships the suites in
``mmdiag/suites/`` (links to ``probes/*.yaml`` in the source tree, copied into the wheel), so ``--suite NAME``
works from an installed wheel too.

Besides each probe's metrics, every probe offers the integrity metric ``failed_examples`` to gate on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import mmdiag
from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE
from mmdiag.errors import ConfigError
from mmdiag.interventions.registry import canonical_interventions
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.run.config import AuditConfig
from mmdiag.run.gates import parse_gate
from mmdiag.scenes.generate import Cooccurrence, SceneRecipe
from mmdiag.validation import check_bound

TOP_KEYS = {"name", "description", "seed", "batch_size", "scenes", "probes", "gates", "interventions"}
SCENE_KEYS = {"n", "resolution", "min_objects", "max_objects", "background", "cooccurrence"}
GATE_GROUPS = ("all", GENERATIVE, DUAL_ENCODER)  # a suite's gates apply to every model, or to one kind
SUITES_DIR = Path(mmdiag.__file__).resolve().parent / "suites"  # shipped suites: links to probes/*.yaml


@dataclass(frozen=True)
class Suite:
    """A parsed suite: its name, description, and the audit configuration it stands for."""

    name: str
    description: str
    config: AuditConfig
    source: str


def default_suite() -> Suite:
    """The release suite (probes/release.yaml, shipped as mmdiag/suites/release.yaml)."""
    return load_suite(SUITES_DIR / "release.yaml")


def shipped_suites() -> list[Suite]:
    """Every suite shipped with mmdiag, by name (what ``--suite NAME`` accepts)."""
    return [load_suite(path) for path in sorted(SUITES_DIR.glob("*.yaml"))]


def release_gates_for(kind: str) -> list[str]:
    """The release suite's gates for a model of ``kind``, normalised (``probe.metric[.bound] op threshold``):
    the healthy ranges the reports show beside every metric."""
    return [str(parse_gate(g)) for g in default_suite().config.gates_for(kind)]


def load_suite(path: str | Path) -> Suite:
    """A suite from a YAML file, or by name (``quick``, ``release``...: a shipped suite, see
    :func:`shipped_suites`); a file of that name in the working folder wins."""
    path = Path(path)
    named = str(path).removesuffix(".yaml")
    if (
        not path.is_file()
        and path.parent == Path(".")
        and "/" not in named
        and (SUITES_DIR / f"{named}.yaml").is_file()
    ):
        path = SUITES_DIR / f"{named}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))) if SUITES_DIR.is_dir() else "none found"
        raise ConfigError(
            f"suite {path} does not exist: pass a YAML file or a suite name (shipped: {known}; 'mmdiag ls' lists them)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"suite {path} is not valid YAML{where}: {problem}") from err
    return parse_suite(data, str(path))


def parse_suite(data: Any, source: str, registry: ProbeRegistry | None = None) -> Suite:
    """Validate a suite's data and turn it into an AuditConfig."""

    if not isinstance(data, dict):
        raise ConfigError(f"suite {source} must be a mapping of keys ({', '.join(sorted(TOP_KEYS))})")
    _no_unknown(data, TOP_KEYS, source, "")
    registry = registry or ProbeRegistry()
    scenes = data.get("scenes") or {}
    if not isinstance(scenes, dict):
        raise ConfigError(f"suite {source}: 'scenes' must be a mapping ({', '.join(sorted(SCENE_KEYS))})")
    _no_unknown(scenes, SCENE_KEYS, source, "scenes.")
    probes = data.get("probes")
    if not isinstance(probes, dict) or not probes:
        raise ConfigError(f"suite {source}: 'probes' must map probe names to parameters, e.g. 'hallucination: {{}}'")
    params: dict[str, dict[str, Any]] = {}
    for name, value in probes.items():
        value = value or {}
        if not isinstance(value, dict):
            raise ConfigError(f"suite {source}: parameters of probe '{name}' must be a mapping")
        registry.create(name, **value)  # unknown probe or parameter -> ConfigError
        params[name] = value
    gates, kind_gates = _gates(data.get("gates") or [], source)
    interventions = data.get("interventions") or []
    if not isinstance(interventions, list) or not all(isinstance(i, str) for i in interventions):
        raise ConfigError(f"suite {source}: 'interventions' must be a list of NAME or NAME:key=value,... strings")
    try:
        recipe = SceneRecipe(
            min_objects=_int(scenes, "min_objects", 1, source),
            max_objects=_int(scenes, "max_objects", 3, source),
            background=str(scenes.get("background", "plain")),
            cooccurrence=Cooccurrence(**scenes["cooccurrence"]) if scenes.get("cooccurrence") else None,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"suite {source}: bad scenes recipe ({err})") from err
    config = AuditConfig(
        probes=tuple(params),
        n_examples=check_bound("n_examples", scenes.get("n", 48), f"suite {source}", "scenes.n"),
        seed=check_bound("seed", data.get("seed", 0), f"suite {source}", "seed"),
        resolution=check_bound("resolution", scenes.get("resolution", 64), f"suite {source}", "scenes.resolution"),
        gates=gates,
        kind_gates=kind_gates,
        batch_size=check_bound("batch_size", data.get("batch_size", 8), f"suite {source}", "batch_size"),
        recipe=recipe,
        probe_params=params,
        interventions=canonical_interventions(interventions),
    )
    return Suite(str(data.get("name", Path(source).stem)), str(data.get("description", "")), config, source)


def _gates(gates: Any, source: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``gates`` is a list (every model) or a mapping ``{all: [...], generative: [...], dual_encoder: [...]}``:
    the gates of a model kind apply only to models of that kind (their metrics differ)."""
    if isinstance(gates, list):
        gates = {"all": gates}
    if not isinstance(gates, dict):
        raise ConfigError(
            f"suite {source}: 'gates' must be a list like ['hallucination.f1 >= 0.8'] or a mapping "
            f"from model kind ({', '.join(GATE_GROUPS)}) to such lists"
        )
    _no_unknown(gates, set(GATE_GROUPS), source, "gates.")
    groups: dict[str, tuple[str, ...]] = {}
    for group, items in gates.items():
        if not isinstance(items, list):
            raise ConfigError(f"suite {source}: 'gates.{group}' must be a list like ['hallucination.f1 >= 0.8']")
        groups[group] = tuple(str(parse_gate(str(g))) for g in items)
    return groups.pop("all", ()), groups


def _no_unknown(data: dict, known: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"suite {source}: unknown key '{prefix}{unknown[0]}' (allowed: {', '.join(sorted(known))})")


def _int(data: dict, key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"suite {source}: '{key}' must be a non-negative integer, got {value!r}")
    return value
