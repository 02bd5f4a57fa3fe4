"""Release gates over many seeds: the false-FAIL rate of clean models and the power against planted defects.

Runs the release suite (``probes/release.yaml``; or ``--suite projector`` / ``prior``) at its shipped size on each
model at seeds 0..S-1, with only the probes its quality gates read (release: attention, hallucination; the spatial
probe is gated in ``projector``) and the outputs no gate reads left out (free text, captions, the untrained
attention baseline: the gated numbers are unchanged), and
writes one JSON line per (model, seed) with every gated metric's value, CI and verdict, then a summary per model:
how often each gate failed. Clean models must pass at every seed (false-FAIL rate); each defect must fail the gate
meant for it at >= 95 % of seeds (power)::

    python bench/gate_power.py --seeds 10 --out runs/gate-power                  # clean zoo + defects folder
    python bench/gate_power.py --seeds 10 --models ref-llava-mlp --out runs/gp   # one model
    python bench/gate_power.py --seeds 10 --defects runs/defects --out runs/gp   # + every model folder in there

Models are zoo names or checkpoint folders (``--defects`` adds every folder of ``bench/planted_defects.py``'s
output). Each line: {"model", "seed", "verdict", "gates": {gate: [value, passed]}, "metrics": {...}, "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CLEAN = ("ref-llava-mlp", "ref-llava-linear", "ref-llava-pool", "ref-llava-resampler", "ref-blip2")


GATED_PROBES = {"release": ("attention", "hallucination"), "projector": ("spatial",), "prior": ("hallucination",)}
LIGHT = {
    "attention": {"untrained_baseline": False},
    "hallucination": {"free_text": False, "captions": False},
    "spatial": {"untrained_baseline": False, "llm_layers": []},
}  # outputs no gate reads


def gated_config(seed: int, n_scenes: int | None = None, suite: str = "release"):  # noqa: ANN201 - AuditConfig
    """A shipped suite at ``seed`` with the probes its quality gates read only and the ungated outputs off."""
    from mmdiag.run.suites import load_suite

    config = load_suite(ROOT / "probes" / f"{suite}.yaml").config
    probes = GATED_PROBES[suite]
    params = {name: {**config.probe_params.get(name, {}), **LIGHT[name]} for name in probes}
    return replace(
        config,
        seed=seed,
        probes=probes,
        n_examples=n_scenes or config.n_examples,
        probe_params={k: v for k, v in params.items() if k in probes},
        gates=tuple(g for g in config.gates if g.split(".")[0] in probes),
        kind_gates={k: tuple(g for g in v if g.split(".")[0] in probes) for k, v in config.kind_gates.items()},
    )


def run(model: str, seed: int, out: Path, n_scenes: int | None, suite: str = "release") -> dict:
    from mmdiag import api
    from mmdiag.zoo.build import resolve_model_name

    start = time.perf_counter()
    folder = out / "runs" / f"{Path(model).name}-seed{seed}"
    name, _, plant = model.partition("+")  # ref-llava-mlp+image-blind: a defect planted by mmdiag itself
    results = api.audit(
        resolve_model_name(name),
        folder,
        gated_config(seed, n_scenes, suite),
        overwrite=True,
        progress=False,
        plant=plant or None,
    ).results
    metrics = {
        f"{p}.{m}": [v.get("value"), v.get("ci_low"), v.get("ci_high")]
        for p, r in results["probes"].items()
        for m, v in r.get("metrics", {}).items()
    }
    return {
        "model": model,
        "seed": seed,
        "verdict": results["verdict"],
        "gates": {g["gate"]: [g.get("value"), g["passed"]] for g in results["gates"]},
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--models",
        default=",".join(CLEAN),
        help="comma-separated zoo names or folders; NAME+DEFECT plants one of mmdiag's own defects (--plant)",
    )
    parser.add_argument("--defects", default=None, help="a folder of planted-defect checkpoints (each one audited)")
    parser.add_argument("--n-examples", type=int, default=None, help="scenes per run (default: the suite's)")
    parser.add_argument("--suite", default="release", choices=sorted(GATED_PROBES))
    parser.add_argument("--out", default="runs/gate-power")
    parser.add_argument(
        "--table-only", action="store_true", help="no runs: re-read the stored ones with the suite's current gates"
    )
    parser.add_argument(
        "--record", action="store_true", help="write the matrix to bench/results/gate_power_<suite>.jsonl (the docs)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]
    if args.defects:
        models += sorted(str(p) for p in Path(args.defects).iterdir() if (p / "config.json").is_file())
    lines = out / "runs.jsonl"
    if args.table_only:
        summary(lines, args.suite, args.record)
        return
    done = set()
    if lines.is_file():
        done = {(r["model"], r["seed"]) for r in map(json.loads, lines.read_text().splitlines())}
    with lines.open("a") as f:
        for model in models:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if (model, seed) in done:
                    continue
                row = run(model, seed, out, args.n_examples, args.suite)
                f.write(json.dumps(row) + "\n")
                f.flush()
                failed = [g for g, (_, ok) in row["gates"].items() if not ok]
                print(
                    f"{Path(model).name} seed {seed}: {row['verdict']} in {row['seconds']} s"
                    + (f"; failed: {', '.join(failed)}" if failed else ""),
                    flush=True,
                )
    summary(lines, args.suite, args.record)


def evaluate(row: dict, gates: list[str]) -> dict[str, tuple[float | None, bool]]:
    """Each of the suite's current ``gates`` on a stored row's metrics: (the compared bound, passed); an undefined
    metric fails, as in an audit. Rows stay valid when thresholds change (only the verdicts are re-read)."""
    from mmdiag.run.gates import parse_gate

    out = {}
    for text in gates:
        gate = parse_gate(text)
        value, low, high = row["metrics"].get(f"{gate.probe}.{gate.metric}", [None, None, None])
        bound = {"value": value, "ci_low": low, "ci_high": high}[gate.bound]
        passed = (
            bound is not None
            and {
                ">=": bound >= gate.threshold,
                "<=": bound <= gate.threshold,
                ">": bound > gate.threshold,
                "<": bound < gate.threshold,
            }[gate.op]
        )
        out[text] = (bound, passed)
    return out


SHORT = {
    "accuracy.ci_low": "acc",
    "multimodal_gain.ci_low": "gain",
    "evidence_sensitivity.ci_low": "evid",
    "prior_persistence_cooccurring.ci_high": "persist",
    "adversarial_gap.ci_high": "adv gap",
    "accuracy_adversarial.ci_low": "acc adv",
    "yes_ratio.ci_high": "yes ≤",
    "yes_ratio.ci_low": "yes ≥",
    "mirror_sensitivity.ci_low": "mirror sens",
    "mirror_accuracy.ci_low": "mirror acc",
    "relation_accuracy_horizontal.ci_low": "rel L/R",
    "blind_answer_shift.ci_low": "blind shift",
    "projector_grid_cell_above_chance.ci_low": "layout (token order)",
    "projector_grid_cell_in_content_above_chance.ci_low": "layout (token content)",
}


def short_name(gate: str) -> str:
    """A gate's column name in the matrix (its metric and bound, abbreviated)."""
    name = ".".join(gate.split()[0].split(".")[1:])
    return SHORT.get(name, name)


def _order(model: str) -> tuple:
    """Clean zoo first, then the near-identical control and the biased model, then each defect by strength."""
    name = Path(model).name
    fixed = [*CLEAN, "control-0.0001", "ref-llava-biased"]
    if name in fixed:
        return (0, fixed.index(name), "", 0.0)
    defect, _, strength = name.rpartition("-")
    try:
        return (1, 0, defect, float(strength))
    except ValueError:
        return (1, 0, name, 0.0)


def summary(lines: Path, suite: str = "release", record_figures: bool = False) -> None:
    """Per model: runs, FAIL verdicts and, per gate of the suite as it is now, the seeds at which it failed (one
    JSON line each; ``matrix.md`` beside the lines holds the table: failing seeds per cell, · none); over the clean
    models, each gate's worst bound."""
    config = gated_config(0, None, suite)
    gates = [g for g in config.gates_for("generative") if "failed_examples" not in g]
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append({**row, "judged": evaluate(row, gates)})
    table = [
        "| variant | seeds | FAIL | " + " | ".join(short_name(g) for g in gates) + " |",
        "|---|---|---|" + "---|" * len(gates),
    ]
    for model in sorted(by_model, key=_order):
        runs = by_model[model]
        fails = {g: sum(not r["judged"][g][1] for r in runs) for g in gates}
        verdicts = sum(any(not ok for _, ok in r["judged"].values()) for r in runs)
        print(
            json.dumps(
                {
                    "model": Path(model).name,
                    "runs": len(runs),
                    "fail_verdicts": verdicts,
                    "gates_failed": {g: f"{n}/{len(runs)}" for g, n in fails.items() if n},
                }
            )
        )
        table.append(
            f"| {Path(model).name} | {len(runs)} | {verdicts} | "
            + " | ".join(f"**{fails[g]}**" if fails[g] else "·" for g in gates)
            + " |"
        )
    (lines.parent / "matrix.md").write_text("\n".join(table) + "\n")
    if record_figures:
        from record import record

        record(
            f"gate_power_{suite}",
            [
                {
                    "figure": Path(model).name,
                    "value": sum(any(not ok for _, ok in r["judged"].values()) for r in by_model[model]),
                    "unit": "FAIL verdicts",
                    "target": "0 for a clean model, every seed for a defect",
                    "note": "",
                    "runs": len(by_model[model]),
                    "seeds": sorted({r["seed"] for r in by_model[model]}),
                    "gates": {short_name(g): sum(not r["judged"][g][1] for r in by_model[model]) for g in gates},
                }
                for model in sorted(by_model, key=_order)
            ],
        )
    clean = [r for model, runs in by_model.items() if Path(model).name in CLEAN for r in runs]
    for g in gates:
        bounds = [r["judged"][g][0] for r in clean if r["judged"][g][0] is not None]
        if bounds:
            worst = max(bounds) if "<" in g else min(bounds)
            print(json.dumps({"gate": g, "clean_runs": len(bounds), "worst_clean_bound": round(worst, 4)}))


if __name__ == "__main__":
    main()
