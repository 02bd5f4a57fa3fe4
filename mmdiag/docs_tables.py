"""Tables the documentation site generates from the code and the benchmark files, never copied by hand.

``docs/hooks.py`` (an mkdocs hook) replaces each ``<!-- mmdiag:NAME ARG -->`` marker of a page with
``TABLES[NAME](ARG)``: the command-line reference from the argument parser, the support table from the adapter
registry, the metric table from the probes' specs, the zoo table from the shipped model cards, and the benchmark
and gate-matrix tables from ``bench/results/*.jsonl`` (written by the benchmarks' ``--record``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_RESULTS = ROOT / "bench" / "results"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def cli_reference(_: str = "") -> str:
    """Every command of ``mmdiag`` with its help and a table of its flags (spellings, what they do, default)."""
    from mmdiag.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    out = []
    for name, command in sub.choices.items():
        out.append(f"## `mmdiag {name}`\n\n{helps.get(name) or command.description or ''}\n")
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            rows = [[f"`mmdiag {name} {c.dest}`", c.help or ""] for c in nested[0]._choices_actions]
            out.append(_table(["command", "what it does"], rows))
        rows = []
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            spelling = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}` (positional)"
            default = action.default
            shown = "" if default in (None, False, argparse.SUPPRESS) or action.option_strings == [] else f"`{default}`"
            rows.append([spelling, action.help or "", shown])
        if rows:
            out.append(_table(["flag", "what it does", "default"], rows))
    return "\n".join(out)


def _questions(cls: type) -> str:
    """How an adapter scores several questions about one image (from its class flags)."""
    if getattr(cls, "kind", "") != "generative":
        return "—"
    if getattr(cls, "image_tokens_read_the_prompt", False) or not getattr(cls, "reuses_image_prefix", True):
        return "each in full"
    return "packed after one image" if getattr(cls, "packs_questions", False) else "one cached image prefix"


def support_table(_: str = "") -> str:
    """Every declared family (:mod:`mmdiag.families`): its architectures, kind, image-token layout, attention mask,
    how several questions share an image, the probes that apply, what a probe cannot do, and what it needs; then any
    architecture an installed package serves through the ``mmdiag.adapters`` entry point alone."""
    from mmdiag.families import ATTENTION_MASKS, TOKEN_LAYOUTS, declared
    from mmdiag.lazy_registry import import_object
    from mmdiag.probes.registry import ProbeRegistry

    probes = ProbeRegistry(load_entry_points=False)
    probe_kinds = {name: probes.get(name).kinds for name in probes.names()}
    rows = []
    for family in sorted(declared().values(), key=lambda f: f.title.lower()):
        cls = import_object(family.adapter)
        needs = [f"transformers ≥ {family.min_transformers}"] if family.min_transformers else []
        rows.append(
            [
                family.title,
                ", ".join(f"`{a}`" for a in family.architectures),
                family.kind.replace("_", " "),
                TOKEN_LAYOUTS[family.tokens],
                ATTENTION_MASKS[family.attention],
                _questions(cls),
                ", ".join(name for name, kinds in probe_kinds.items() if family.kind in kinds),
                "; ".join(family.limits) or "—",
                ", ".join(needs + [f"`{e}`" for e in family.extras]),
            ]
        )
    from mmdiag.adapters.registry import default_registry

    registry = default_registry()
    for architecture in registry.supported():
        if not any(architecture in f.architectures for f in declared().values()):  # an adapter-only entry point
            cls = registry.get(architecture)
            applies = ", ".join(name for name, kinds in probe_kinds.items() if cls.kind in kinds)
            provider = registry.provider(architecture)
            row = [f"{cls.family} (from {provider})", f"`{architecture}`", cls.kind.replace("_", " ")]
            rows.append(row + ["—", "—", _questions(cls), applies, "—", "—"])
    header = ["family", "architectures", "kind", "image tokens", "attention mask", "questions per image", "probes"]
    return _table(header + ["cannot", "needs"], rows)


def tiny_families(_: str = "") -> str:
    """The families ``mmdiag tiny`` builds random tiny checkpoints of, as a list."""
    from mmdiag.families import tiny_builds

    TINY_FAMILIES = tuple(tiny_builds())
    return ", ".join(f"`{name}`" for name in TINY_FAMILIES) + "\n"


def metrics_table(_: str = "") -> str:
    """Every headline metric of every built-in probe, from its :class:`~mmdiag.probes.metric_spec.MetricSpec`."""
    from mmdiag.probes.metric_spec import metric_table
    from mmdiag.probes.registry import ProbeRegistry

    registry = ProbeRegistry(load_entry_points=False)
    return metric_table({name: registry.get(name) for name in registry.names()})


def zoo_table(_: str = "") -> str:
    """The reference zoo from its recipes and the shipped model cards (held-out numbers as each card records)."""
    from mmdiag.zoo.build import SHIPPED_DIR
    from mmdiag.zoo.recipes import RECIPES

    rows = []
    for name, recipe in RECIPES.items():
        path = SHIPPED_DIR / name / "card.json"
        card = json.loads(path.read_text()) if path.is_file() else {}
        measured = []
        for key, label in (
            ("presence_accuracy", "presence"),
            ("relation_accuracy_horizontal", "left/right"),
            ("relation_accuracy_vertical", "above/below"),
            ("caption_accuracy", "right caption among 5"),
            ("prior_yes_after_removal", "yes to the erased co-occurring object"),
        ):
            if isinstance(card.get(key), (int, float)):
                measured.append(f"{label} {card[key]:.3f}")
        rows.append(
            [
                f"`{name}`",
                recipe.description,
                "shipped" if card else f"not shipped (`mmdiag zoo build {name}`)",
                ", ".join(measured) + (f" ({card['heldout_scenes']} held-out scenes)" if measured else "") or "–",
                f"{card['parameters']:,}" if card.get("parameters") else "–",
                f"{card['train_seconds']:.0f} s ({card.get('machine', '?')})" if card.get("train_seconds") else "–",
            ]
        )
    return _table(["model", "what it is", "status", "measured (card)", "parameters", "training time"], rows)


def _records(name: str, folder: Path = BENCH_RESULTS) -> list[dict[str, Any]]:
    path = folder / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def benchmark(name: str, folder: Path = BENCH_RESULTS) -> str:
    """One benchmark's recorded figures (``bench/results/<name>.jsonl``) as a table, with the machine and command;
    a benchmark not recorded yet says so."""
    rows = _records(name, folder)
    if not rows:
        return f"*Not recorded yet: run `python bench/{name}.py --record`.*\n"
    first = rows[0]

    def value(r: dict[str, Any]) -> str:
        if r["value"] is None:
            return "–"
        unit = r.get("unit") or ""
        return f"{r['value']}{unit}" if unit in ("", "×", "%") else f"{r['value']} {unit}"

    table = _table(
        ["figure", "value", "target", "note"],
        [[r["figure"], value(r), r.get("target") or "", r.get("note") or ""] for r in rows],
    )
    return f"{table}\nMeasured {first['measured_at']} on {first['machine']} with `{first['command']}`.\n"


def gate_matrix(suite: str, folder: Path = BENCH_RESULTS) -> str:
    """The gate matrix of a suite (``bench/results/gate_power_<suite>.jsonl``): per variant, the seeds run, the FAIL
    verdicts, and per gate the seeds at which it failed (· none)."""
    rows = _records(f"gate_power_{suite}", folder)
    if not rows:
        return f"*Not recorded yet: run `python bench/gate_power.py --suite {suite} --table-only --record`.*\n"
    gates = list(rows[0]["gates"])
    body = [
        [r["figure"], r["runs"], r["value"], *(f"**{n}**" if n else "·" for n in r["gates"].values())] for r in rows
    ]
    table = _table(["variant", "seeds", "FAIL", *gates], body)
    return f"{table}\nRecorded {rows[0]['measured_at']} with `{rows[0]['command']}` on {rows[0]['machine']}.\n"


TABLES: dict[str, Callable[[str], str]] = {
    "cli": cli_reference,
    "support": support_table,
    "tiny": tiny_families,
    "metrics": metrics_table,
    "zoo": zoo_table,
    "benchmark": benchmark,
    "gate-matrix": gate_matrix,
}


def main(argv: list[str] | None = None) -> None:
    """``python -m mmdiag.docs_tables NAME [ARG]`` prints one generated table."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in TABLES:
        raise SystemExit(f"usage: python -m mmdiag.docs_tables {{{','.join(TABLES)}}} [ARG]")
    print(TABLES[args[0]](args[1] if len(args) > 1 else ""), end="")


if __name__ == "__main__":
    main()
