"""The package's shape, as the README's map draws it: no import circles, imports only downwards
(cli -> api -> run -> report/zoo -> probes -> adapters/sources/checkpoints -> scenes -> metrics -> results,
validation, data paths -> errors), the
probes reading data only through the data-source contract, and no registry naming zoo code. Every import counts,
lazy ones inside functions included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mmdiag

ROOT = Path(mmdiag.__file__).parent

# package (or top-level module) -> layer; an import may only go to a higher number (or stay in its package)
LAYERS = {
    "__main__": -1,
    "docs_tables": -1,  # the documentation's generated tables: reads the CLI and the registries
    "cli": 0,
    "api": 1,
    "offline": 1,  # audits from answers: export and replay, over the run machinery
    "run": 2,
    "report": 3,
    "interventions": 4.5,  # scoped changes to how a model computes (hook points in adapters; probes use them)
    "zoo": 3,
    "probes": 4,
    "adapters": 5,
    "sources": 5,
    "checkpoints": 5,
    "scenes": 6,
    "metrics": 7,
    "blind_inputs": 7,  # images and pixel tensors with the evidence taken out (blank, noise, VCD noise)
    "results": 8,
    "verdicts": 8,
    "validation": 8,
    "data_paths": 8,
    "lazy_registry": 8,
    "families": 7.5,  # the family declarations: data the adapter registry, mmdiag tiny and the docs read
    "errors": 9,
    "memory": 9,  # freed memory handed back to the operating system between phases
    "mmdiag": 10,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("mmdiag", *path.relative_to(ROOT).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = path
    return found


def _imports() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmdiag"):
                targets = [resolve(f"{node.module}.{alias.name}") or resolve(node.module) for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [resolve(alias.name) for alias in node.names if alias.name.startswith("mmdiag")]
            graph[name].update(t for t in targets if t and t != name)
    return graph


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mmdiag"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert _cycles(_imports()) == []


def test_every_package_has_a_layer():
    assert {_group(m) for m in _modules()} <= set(LAYERS)


def test_imports_only_go_down_the_layers():
    upward = sorted(
        (a, b)
        for a, targets in _imports().items()
        for b in targets
        if _group(a) != _group(b) and LAYERS[_group(b)] <= LAYERS[_group(a)]
    )
    assert upward == []


def test_probes_read_data_only_through_the_source_contract():
    offending = sorted(
        (a, b)
        for a, targets in _imports().items()
        if _group(a) == "probes"
        for b in targets
        if _group(b) in ("scenes", "zoo", "run", "report")
    )
    assert offending == []


def test_registries_name_no_zoo_code():
    from mmdiag.adapters.registry import BUILTIN_ADAPTERS
    from mmdiag.probes.registry import BUILTIN_PROBES
    from mmdiag.sources.registry import BUILTIN_SOURCES

    for table in (BUILTIN_ADAPTERS, BUILTIN_PROBES, BUILTIN_SOURCES):
        assert not any(target.startswith("mmdiag.zoo") for target in table.values())


def test_the_layer_rules_can_fail():
    """A planted upward import is caught (the checks above are not vacuous)."""
    graph = _imports()
    graph["mmdiag.metrics.stats"].add("mmdiag.probes.base")
    assert any(LAYERS[_group(b)] <= LAYERS[_group(a)] for a, t in graph.items() for b in t if _group(a) != _group(b))
    graph["mmdiag.probes.base"].add("mmdiag.metrics.stats")
    graph["mmdiag.metrics.stats"].add("mmdiag.probes.base")
    assert _cycles(graph)
