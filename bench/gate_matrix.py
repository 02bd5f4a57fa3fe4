"""The planted-defect matrix behind the shipped gates: every variant x every gate of the gated suites.

Runs the shipped suites unchanged (probes/release.yaml, prior.yaml, projector.yaml) on the clean reference zoo
and on planted-defect variants, writes each run folder, one JSON line per run, and a Markdown table per suite
for the README::

    python bench/gate_matrix.py --out runs/gate-matrix                    # everything (about 30 min, 2 cores)
    python bench/gate_matrix.py --out runs/gate-matrix --suites release --only ref-llava-mlp,ref-llava-mlp+image-blind
    python bench/gate_matrix.py --out runs/gate-matrix --table-only      # re-evaluate the suites' gates, no runs

Thresholds are calibrated on the unplanted zoo rows (README "Release gates"); the defect rows prove them.
With ``--table-only`` the tables re-evaluate each suite's current gates on the stored results.json files.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("release", "prior", "projector")
VARIANTS = [  # (label, zoo model, planted defect, suites it runs)
    ("ref-llava-mlp", "ref-llava-mlp", None, SUITES),
    ("ref-llava-linear", "ref-llava-linear", None, SUITES),
    ("ref-llava-pool", "ref-llava-pool", None, SUITES),
    ("ref-llava-resampler", "ref-llava-resampler", None, SUITES),
    ("ref-blip2", "ref-blip2", None, SUITES),
    ("ref-clip", "ref-clip", None, ("release",)),
    ("ref-llava-mlp+image-blind", "ref-llava-mlp", "image-blind", SUITES),
    ("ref-llava-mlp+shuffled-image-tokens", "ref-llava-mlp", "shuffled-image-tokens", SUITES),
    ("ref-llava-mlp+untrained-vision-encoder", "ref-llava-mlp", "untrained-vision-encoder", SUITES),
    ("ref-llava-mlp+text-only-lm", "ref-llava-mlp", "text-only-lm", SUITES),
    ("ref-llava-biased", "ref-llava-biased", None, SUITES),
    ("ref-blip2+image-blind", "ref-blip2", "image-blind", ("release",)),
    ("ref-clip+image-blind", "ref-clip", "image-blind", ("release",)),
]


def main() -> None:
    from mmdiag import api
    from mmdiag.run.suites import load_suite
    from mmdiag.zoo.build import SHIPPED_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gate-matrix")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated suite names")
    parser.add_argument("--only", default=None, help="comma-separated variant labels")
    parser.add_argument("--table-only", action="store_true", help="no runs: rebuild the tables from stored runs")
    args = parser.parse_args()
    out = Path(args.out)
    wanted = set(args.only.split(",")) if args.only else None
    suites = [s for s in args.suites.split(",") if s]
    for suite_name in suites:
        suite = load_suite(ROOT / "probes" / f"{suite_name}.yaml")
        folder = out / suite_name
        folder.mkdir(parents=True, exist_ok=True)
        for label, model, defect, runs_on in VARIANTS if not args.table_only else []:
            if suite_name not in runs_on or (wanted and label not in wanted):
                continue
            start = time.perf_counter()
            outcome = api.audit(
                str(SHIPPED_DIR / model), folder / label, suite.config, overwrite=True, progress=False, plant=defect
            )
            failed = [g["gate"] for g in outcome.results["gates"] if not g["passed"]]
            print(
                f"{suite_name} / {label}: {outcome.results['verdict']} in {time.perf_counter() - start:.1f} s; "
                f"failed: {', '.join(failed) or 'none'}",
                flush=True,
            )
        table = markdown_table(folder, suite.config)
        (folder / "matrix.md").write_text(table)
        print(f"## {suite_name}\n\n{table}")


def markdown_table(folder: Path, config) -> str:  # noqa: ANN001 - AuditConfig
    """One table per model kind: variants as rows, the suite's quality gates as columns, the metric [CI] and
    pass / FAIL as the gates evaluate now on the stored results."""
    from mmdiag.run.gates import evaluate_gates, parse_gate

    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for label, *_ in VARIANTS:
        path = folder / label / "results.json"
        if path.is_file():
            results = json.loads(path.read_text())
            kind = results["metadata"]["model"]["kind"]
            gates = [parse_gate(g) for g in config.gates_for(kind) if "failed_examples" not in g]
            if gates:
                outcomes = {str(g): o for g, o in zip(gates, evaluate_gates(gates, results["probes"]))}
                by_kind.setdefault(kind, []).append((label, outcomes))
    tables = []
    for rows in by_kind.values():
        columns = list(dict.fromkeys(gate for _, outcomes in rows for gate in outcomes))
        lines = [
            "| variant | verdict | " + " | ".join(f"`{c}`" for c in columns) + " |",
            "|---|---|" + "---|" * len(columns),
        ]
        for label, outcomes in rows:
            cells = [_cell(outcomes[c]) for c in columns]
            verdict = "PASS" if all(o.passed for o in outcomes.values()) else "**FAIL**"
            lines.append(f"| {label} | {verdict} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def _cell(outcome) -> str:  # noqa: ANN001 - GateOutcome
    if outcome.value is None:
        return "undefined **FAIL**"
    ci = f" [{outcome.ci_low:.2f}, {outcome.ci_high:.2f}]" if outcome.ci_low is not None else ""
    return f"{outcome.estimate:.2f}{ci} " + ("pass" if outcome.passed else "**FAIL**")


if __name__ == "__main__":
    main()
