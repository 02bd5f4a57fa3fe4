"""Comparing audited runs: side by side, and pair by pair where the examples match.

Runs *match* when they share what decides the measurements (probes and parameters, scenes, seed, resolution,
batch size: ``config_hash``; gates are left out) and hold the same example ids; then each probe's per-example
numbers (``Probe.paired_values``) give paired differences against the first run (the baseline), with
bootstrap CIs over the shared examples, read with the metric's guide (which way is better, what it means).
When runs do not match, only the side-by-side table is given, with a warning naming the settings that differ.
Everything is read from the run folders (results.json + examples.jsonl) alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmdiag.errors import MmdiagError, write_error
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.guidance import guide_for
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.results import EXAMPLES_FILE, RESULTS_FILE, read_examples, read_results


@dataclass
class RunSummary:
    label: str
    path: str
    model: str
    config_hash: str
    seed: int
    metrics: dict[str, dict[str, float | None]]  # probe -> metric -> value
    spatial: dict[str, Any] | None
    details: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # probe -> metric -> CI, guide, status
    verdict: str | None = None


@dataclass
class PairedDifference:
    probe: str
    metric: str
    run: str
    baseline: str
    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    better: int = 0  # +1 higher is better, -1 lower is better, 0 no direction (from the metric's guide)
    change: str = ""  # better / worse / no detectable change / changed (no direction), from the paired CI
    meaning: str = ""


def better_direction(probe: str, metric: str, registry: ProbeRegistry | None = None) -> int:
    """+1 when higher is better, -1 when lower is, 0 otherwise (near a reference, descriptive, a number that follows
    the design such as image-token mass, no guide): the metric's guide (:mod:`mmdiag.probes.guidance`) decides;
    only directed, comparable metrics can regress."""
    try:
        guide = guide_for((registry or ProbeRegistry()).get(probe), metric)
    except MmdiagError:
        return 0
    if guide is None or not guide.comparable:
        return 0
    return {"higher": 1, "lower": -1}.get(guide.better, 0)


def _change(better: int, low: float, high: float, comparable: bool = True) -> str:
    if low <= 0 <= high:
        return "no detectable change"
    if not comparable:
        return "changed (follows the design, e.g. the image-token count: not a regression)"
    if better == 0:
        return "changed (no better direction)"
    return "better" if (low > 0) == (better > 0) else "worse"


@dataclass
class Comparison:
    runs: list[RunSummary]
    paired: list[PairedDifference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    regressions: list[PairedDifference] = field(default_factory=list)  # set by find_regressions
    regression_tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label(run_dir: Path, results: dict[str, Any], used: set[str]) -> str:
    label = run_dir.name
    while label in used:
        label = f"{label}'"
    used.add(label)
    return label


def compare_runs(run_dirs: list[str | Path], registry: ProbeRegistry | None = None, seed: int = 0) -> Comparison:
    """Side-by-side metrics of every run, and paired differences against the first where examples match."""
    if len(run_dirs) < 2:
        raise MmdiagError("compare needs at least two run folders: mmdiag compare RUN_A RUN_B [...] --out DIR")
    registry = registry or ProbeRegistry()
    used: set[str] = set()
    loaded = []
    for run_dir in map(Path, run_dirs):
        results = read_results(run_dir)
        loaded.append((run_dir, results, read_examples(run_dir)))
    runs = [
        RunSummary(
            label=_label(run_dir, results, used), path=str(run_dir), model=results["metadata"]["model"]["source"],
            config_hash=results["metadata"]["config_hash"], seed=results["metadata"]["seed"],
            metrics={p: {m: v.get("value") for m, v in r.get("metrics", {}).items()} for p, r in results["probes"].items()},
            spatial=results["probes"].get("spatial"),
            details={p: {m: {k: v.get(k) for k in DETAIL_KEYS if k in v} for m, v in r.get("metrics", {}).items()}
                     for p, r in results["probes"].items()},
            verdict=results.get("verdict"),
        )
        for run_dir, results, _ in loaded
    ]
    comparison = Comparison(runs)
    results_of = {summary.label: results for summary, (_, results, _) in zip(runs, loaded)}
    base, base_records = runs[0], _values_by_example(loaded[0][2])
    for summary, (_, _, records) in zip(runs[1:], loaded[1:]):
        if summary.config_hash != base.config_hash or summary.seed != base.seed:
            differences = config_differences(loaded[0][1]["metadata"]["config"], results_of[summary.label]["metadata"]["config"])
            comparison.warnings.append(
                f"{summary.label} was not run with the same suite/scenes/seed as {base.label} ("
                + ("; ".join(differences) if differences else f"config {summary.config_hash} vs {base.config_hash}")
                + "): only side-by-side numbers, no paired differences")
            continue
        other = _values_by_example(records)
        for probe in sorted(set(base_records) & set(other)):
            shared = sorted(set(base_records[probe]) & set(other[probe]))
            if len(shared) < len(base_records[probe]) or len(shared) < len(other[probe]):
                comparison.warnings.append(f"{summary.label}/{probe}: only {len(shared)} examples in common with {base.label}")
            if not shared:
                continue
            try:
                pair_fn = registry.get(probe).paired_values
            except MmdiagError:
                continue
            a = [pair_fn(base_records[probe][e]) for e in shared]
            b = [pair_fn(other[probe][e]) for e in shared]
            for metric in sorted(set(a[0]) & set(b[0])):
                paired = paired_difference([x[metric] for x in a], [y[metric] for y in b], seed)
                if paired is None:
                    continue
                n, mean, low, high = paired
                better = better_direction(probe, metric, registry)
                guide = guide_for(registry.get(probe), metric)
                comparison.paired.append(PairedDifference(probe, metric, summary.label, base.label, n,
                                                          mean, low, high, better,
                                                          _change(better, low, high, guide is None or guide.comparable),
                                                          guide.meaning if guide is not None else ""))
    return comparison


def paired_difference(base: list[Any], run: list[Any], seed: int = 0) -> tuple[int, float, float, float] | None:
    """(examples, run - base, 95% CI) over paired per-example values: floats (a per-example mean: the mean of the
    differences, NaN pairs dropped) or ``(numerator, denominator)`` shares (the difference of the two ratios of
    sums, as the headline metrics are computed, examples with a zero denominator on either side dropped); the CI
    resamples examples. None when no example carries the metric."""
    if base and isinstance(base[0], (tuple, list)):
        values = np.array([[*x, *y] for x, y in zip(base, run)], dtype=float)  # [n, 4]: num_a, den_a, num_b, den_b
        values = values[(values[:, 1] > 0) & (values[:, 3] > 0)]
        if len(values) == 0:
            return None

        def of_draws(idx: np.ndarray) -> np.ndarray:
            sums = values[idx].sum(axis=1)  # [n_boot, 4]
            return sums[:, 2] / sums[:, 3] - sums[:, 0] / sums[:, 1]

        total = values.sum(axis=0)
        low, high = bootstrap_ci(values, of_draws=of_draws, seed=seed)
        return len(values), float(total[2] / total[3] - total[0] / total[1]), low, high
    diff = np.array([y - x for x, y in zip(base, run)], dtype=float)
    diff = diff[np.isfinite(diff)]  # a per-example value may be undefined (no such question there)
    if len(diff) == 0:
        return None
    low, high = bootstrap_ci(diff, seed=seed)
    return len(diff), float(diff.mean()), low, high


DETAIL_KEYS = ("ci_low", "ci_high", "guide", "status")
IDENTITY_IGNORED = ("gates", "kind_gates")  # they only judge: runs that differ in gates still pair


def config_differences(base: dict[str, Any], other: dict[str, Any], prefix: str = "") -> list[str]:
    """The measuring settings two runs' ``metadata.config`` differ in, as ``"n_scenes 48 vs 160"`` (gates and
    the order of probes left out, as in the run identity)."""
    out = []
    for key in sorted(set(base) | set(other)):
        if not prefix and key in IDENTITY_IGNORED:
            continue
        a, b = base.get(key), other.get(key)
        if not prefix and key == "probes":
            a, b = sorted(a or []), sorted(b or [])
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {json.dumps(a)} vs {json.dumps(b)}")
    return out


def find_regressions(comparison: Comparison, tolerance: float = 0.0) -> list[PairedDifference]:
    """Paired differences (candidate - baseline) that are worse by more than ``tolerance`` with a 95% CI that
    excludes zero, for the metrics whose guide gives a better direction (:func:`better_direction`). Stored on
    ``comparison``."""
    if tolerance < 0:
        raise MmdiagError(f"--fail-on-regression tolerance must be >= 0, got {tolerance:g}")
    found = []
    for d in comparison.paired:
        better = d.better
        if better > 0 and d.ci_high < 0 and d.mean_difference < -tolerance:
            found.append(d)
        elif better < 0 and d.ci_low > 0 and d.mean_difference > tolerance:
            found.append(d)
    comparison.regressions = found
    comparison.regression_tolerance = tolerance
    return found


def _values_by_example(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        if "values" in record:
            out.setdefault(record["probe"], {})[record["example_id"]] = record["values"]
    return out


def check_compare_out(out_dir: str | Path, runs: Sequence[str | Path]) -> Path:
    """``--out`` of compare: a folder that is neither a run folder (results.json or examples.jsonl there) nor inside
    one of the compared runs, so a comparison never writes into a run (one-line MmdiagError)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MmdiagError(f"--out {out} is a file: pass a folder for compare.html, compare.md and compare.json")
    resolved = out.resolve()
    for run in runs:
        run_path = Path(run).resolve()
        if resolved == run_path or run_path in resolved.parents:
            raise MmdiagError(f"--out {out} is inside the compared run {run}: pass a folder of its own, e.g. "
                              f"{Path(run).parent / 'compare'}")
    for name in (RESULTS_FILE, EXAMPLES_FILE):
        if (out / name).exists():
            raise MmdiagError(f"--out {out} holds a run ({name}): pass a folder of its own for the comparison")
    return out


def write_comparison(comparison: Comparison, out_dir: str | Path) -> list[Path]:
    """compare.json, compare.md and a self-contained compare.html in ``out_dir`` (checked by
    :func:`check_compare_out`)."""
    from mmdiag.report.compare_report import (
        render_compare_html,
        render_compare_markdown,
    )

    out = check_compare_out(out_dir, [run.path for run in comparison.runs])
    paths = [out / "compare.json", out / "compare.md", out / "compare.html"]
    texts = [json.dumps(comparison.to_dict(), indent=2), render_compare_markdown(comparison), render_compare_html(comparison)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, texts):
            path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise write_error(err.filename or out, err, "pass a writable --out folder") from err
    return paths
