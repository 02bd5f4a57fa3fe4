"""How many scenes the projector suite needs for its CIs to separate the zoo's projectors.

    python bench/projector_comparison.py --out /tmp/proj48 --n-examples 48     # once per size (audits, kept)
    python bench/projector_sizing.py 48=/tmp/proj48 96=/tmp/proj96 160=/tmp/proj160 320=/tmp/proj320

For each scene count and each projector statistic, counts the pairs of the five projectors (10 pairs) whose 95 %
CIs are disjoint, and prints the median CI width: a statistic separates the designs at a size when most pairs
that differ are told apart there.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

MODELS = ("ref-llava-mlp", "ref-llava-linear", "ref-llava-pool", "ref-llava-resampler", "ref-blip2")


def _intervals(results: dict) -> dict[str, tuple[float, float, float] | None]:
    spatial = results["probes"]["spatial"]
    m = spatial["metrics"]
    flat = spatial["readouts"]["flattened"]["projector"]["grid_cell"]
    diff = spatial["scores"]["projector"]["grid_cell"]

    def metric(name: str) -> tuple[float, float, float] | None:
        x = m[name]
        return None if x["value"] is None or x["ci_low"] is None else (x["value"], x["ci_low"], x["ci_high"])

    return {
        "grid cell, flattened readout": (flat["score"], flat["ci_low"], flat["ci_high"])
        if flat["score"] is not None
        else None,
        "grid cell, projector − encoder": (diff["difference"], *diff["difference_ci"])
        if diff["difference"] is not None
        else None,
        "grid-cell retention": metric("grid_cell_retention"),
        "position retention (joint CI)": metric("position_retention"),
        "debiased CKA": metric("projector_cka"),
        "10-NN overlap": metric("projector_knn_overlap"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="N=DIR: DIR holds one run folder per zoo projector at N scenes")
    args = parser.parse_args()
    table: dict[str, dict[int, str]] = {}
    sizes = []
    for item in args.runs:
        n_text, _, folder = item.partition("=")
        n = int(n_text)
        sizes.append(n)
        per_model = {
            name: _intervals(json.loads((Path(folder) / name / "results.json").read_text())) for name in MODELS
        }
        for stat in next(iter(per_model.values())):
            values = {name: per_model[name][stat] for name in MODELS if per_model[name][stat] is not None}
            pairs = list(combinations(values, 2))
            apart = sum(values[a][2] < values[b][1] or values[b][2] < values[a][1] for a, b in pairs)
            widths = sorted(v[2] - v[1] for v in values.values())
            width = widths[len(widths) // 2] if widths else float("nan")
            table.setdefault(stat, {})[n] = f"{apart}/{len(pairs)} (width {width:.2f})"
    print(
        "| pairs of projectors with disjoint 95% CIs (median CI width) | "
        + " | ".join(f"{n} scenes" for n in sizes)
        + " |"
    )
    print("|---|" + "---|" * len(sizes))
    for stat, row in table.items():
        print(f"| {stat} | " + " | ".join(row.get(n, "–") for n in sizes) + " |")


if __name__ == "__main__":
    main()
