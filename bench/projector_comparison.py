"""The projector comparison of the README: the zoo's projectors on probes/projector.yaml, one table.

    python bench/projector_comparison.py --out /tmp/projectors [--n-examples 160]

Audits each model (run folders kept under --out; an existing finished run is reused), then prints a Markdown table
of the spatial statistics at the projector output against the vision encoder: retention with its paired CI (or why it
is not measurable), the paired difference, the flattened grid-cell readout, debiased CKA and kNN overlap with nulls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmdiag import api
from mmdiag.run.suites import load_suite
from mmdiag.zoo.build import SHIPPED_DIR

MODELS = ("ref-llava-mlp", "ref-llava-linear", "ref-llava-pool", "ref-llava-resampler", "ref-blip2")
ROOT = Path(__file__).resolve().parent.parent


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _retention(metric: dict) -> str:
    if metric["value"] is None:
        return "not measurable" if "permutation null" in (metric.get("undefined") or "") else "–"
    return f"{_num(metric['value'])} [{_num(metric['ci_low'])}, {_num(metric['ci_high'])}]"


def _row(results: dict) -> dict[str, str]:
    spatial = results["probes"]["spatial"]
    m, projector, encoder = spatial["metrics"], spatial["scores"]["projector"], spatial["scores"]["vision_encoder"]
    flat = spatial["readouts"]["flattened"]["projector"]["grid_cell"]
    cka, knn = m["projector_cka"], m["projector_knn_overlap"]
    cell, post = encoder["grid_cell"], projector["grid_cell"]
    return {
        "grid cell, encoder (attention readout) [perm. null, p]": f"{_num(cell['score'])} [{_num(cell['chance'])}, "
        f"p {_num(cell['null_p'], 3)}]",
        "grid-cell retention [paired 95% CI]": _retention(m["grid_cell_retention"]),
        "grid cell, projector − encoder [CI], p": f"{_num(post['difference'])} [{_num(post['difference_ci'][0])}, "
        f"{_num(post['difference_ci'][1])}], p {_num(post['difference_p'], 3)}",
        "half retention": _retention(m["half_retention"]),
        "centre-y retention (R², null ≈ −1)": f"{_num(projector['centre_y'].get('retention'))}"
        if projector["centre_y"].get("retention") is not None
        else "not measurable",
        "grid cell, flattened readout [CI] (majority chance)": f"{_num(flat['score'])} [{_num(flat['ci_low'])}, "
        f"{_num(flat['ci_high'])}] ({_num(flat['chance'])})",
        "debiased CKA [CI] (null, p)": f"{_num(cka['value'])} [{_num(cka['ci_low'])}, {_num(cka['ci_high'])}] "
        f"({_num(cka['null'])}, p {_num(cka['p_value'], 3)})",
        "10-NN overlap [CI] (null k/(n−1))": f"{_num(knn['value'])} [{_num(knn['ci_low'])}, {_num(knn['ci_high'])}] "
        f"({_num(knn['null'], 3)})",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-examples", type=int, default=None, help="override the suite's scene count")
    args = parser.parse_args()
    config = load_suite(ROOT / "probes" / "projector.yaml").config
    if args.n_scenes:
        from dataclasses import replace

        config = replace(config, n_examples=args.n_scenes)
    columns = {}
    for name in MODELS:
        run = args.out / name
        if not (run / "results.json").is_file():
            api.audit(str(SHIPPED_DIR / name), run, config, progress=False, overwrite=True)
        columns[name] = _row(json.loads((run / "results.json").read_text()))
    rows = list(next(iter(columns.values())))
    print(f"| ({config.n_examples} scenes) | " + " | ".join(n.removeprefix("ref-llava-") for n in MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for row in rows:
        print(f"| {row} | " + " | ".join(columns[n][row] for n in MODELS) + " |")


if __name__ == "__main__":
    main()
