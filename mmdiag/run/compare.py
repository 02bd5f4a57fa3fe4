"""Comparing audited runs: side by side, and pair by pair where the examples match.

Runs *match* when they share what decides the measurements (probes and parameters, scenes, seed, resolution,
batch size: ``config_hash``; gates are left out) and hold the same example ids; then each probe's per-example
numbers give paired differences against the first run (the baseline), with bootstrap CIs over the shared examples,
for every metric whose spec (:mod:`mmdiag.probes.metric_spec`) names a paired form: the spec says how the pair is
formed (``ratio``: the difference of the ratios of sums, equal to the difference of the headline values; ``mean``:
the mean per-example difference), which way is better and what the metric means. The per-example values come from
``Probe.paired_values`` (each example's record) and ``Probe.paired_values_of_result`` (metrics that exist only once
aggregated, such as cross-validated readouts).
When runs do not match, only the side-by-side table is given, with a warning naming the settings that differ.
Everything is read from the run folders (results.json + examples.jsonl) alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdiag.errors import MmdiagError, write_error
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.metric_spec import spec_for, specs_of
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.results import EXAMPLES_FILE, RESULTS_FILE, read_examples, read_results
from mmdiag.run.mitigation import Mitigation, decompose


@dataclass
class RunSummary:
    label: str
    path: str
    model: str
    config_hash: str
    seed: int
    metrics: dict[str, dict[str, float | None]]  # probe -> metric -> value
    details: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # probe -> metric -> CI, guide, status
    verdict: str | None = None
    interventions: list[str] = field(default_factory=list)  # NAME:k=v specs the run was measured under

    def alarming(self) -> list[str]:
        """``probe.metric`` of every metric whose status is alarming in this run's report."""
        return [
            f"{probe}.{metric}"
            for probe, metrics in self.details.items()
            for metric, detail in metrics.items()
            if (detail.get("status") or {}).get("state") == "alarming"
        ]

    def alarm_reconciliation(self) -> str | None:
        """Why a run that passes its gates shows alarming metrics (they lie outside the release suite's healthy range,
        which this run's suite does not gate), or ``None`` when there is nothing to reconcile."""
        alarming = self.alarming()
        if self.verdict != "pass" or not alarming:
            return None
        return (
            f"{self.label} passes its own gates, yet {len(alarming)} metric(s) are alarming ({', '.join(alarming)}): "
            "outside the release suite's healthy range, which this run's suite does not gate; read them before "
            "shipping (or audit with the release suite)"
        )


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
    the design such as image-token mass, no spec): the metric's spec decides; only directed, comparable metrics can
    regress."""
    try:
        spec = spec_for((registry or ProbeRegistry()).get(probe), metric)
    except MmdiagError:
        return 0
    return 0 if spec is None else spec.direction


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
    figures: list[dict[str, Any]] = field(default_factory=list)  # probes' comparison figures (sections.Figure as dicts)
    mitigations: list[Mitigation] = field(default_factory=list)  # runs with an intervention, decomposed

    def summary(self, top: int = 5) -> list[str]:
        """What the comparison found, in plain lines: each run's verdict, then the largest detectable paired changes
        (the terminal, compare.md and compare.html lead with these)."""
        lines = [
            f"{run.label}: {run.verdict or 'no verdict'} ({run.path})"
            + (f", with {' + '.join(run.interventions)}" if run.interventions else "")
            for run in self.runs
        ]
        lines += [line for run in self.runs if (line := run.alarm_reconciliation())]
        lines += [line for mitigation in self.mitigations for line in mitigation.lines()]
        moved = sorted(
            (d for d in self.paired if d.change in ("better", "worse")), key=lambda d: -abs(d.mean_difference)
        )
        lines += [
            f"{d.change} {d.probe}.{d.metric}: {d.run} - {d.baseline} = {d.mean_difference:+.3f} "
            f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}] over {d.n} examples"
            for d in moved[:top]
        ]
        if len(moved) > top:
            lines.append(f"... and {len(moved) - top} more detectable change(s) in compare.html")
        if not moved:
            lines.append(
                "no metric changed detectably (every paired 95% CI includes zero)"
                if self.paired
                else "no examples pair with the baseline: run both with the same suite and seed to compare pair by pair"
            )
        return lines

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
            label=_label(run_dir, results, used),
            path=str(run_dir),
            model=results["metadata"]["model"]["source"],
            config_hash=results["metadata"]["config_hash"],
            seed=results["metadata"]["seed"],
            metrics={
                p: {m: v.get("value") for m, v in r.get("metrics", {}).items()} for p, r in results["probes"].items()
            },
            details={
                p: {m: {k: v.get(k) for k in DETAIL_KEYS if k in v} for m, v in r.get("metrics", {}).items()}
                for p, r in results["probes"].items()
            },
            verdict=results.get("verdict"),
            interventions=list(results["metadata"]["config"].get("interventions") or []),
        )
        for run_dir, results, _ in loaded
    ]
    comparison = Comparison(runs, figures=_compare_figures(runs, [results for _, results, _ in loaded], registry))
    results_of = {summary.label: results for summary, (_, results, _) in zip(runs, loaded)}
    base, base_records = runs[0], _values_by_example(loaded[0][2])
    for summary, (_, _, records) in zip(runs[1:], loaded[1:]):
        differences = config_differences(
            loaded[0][1]["metadata"]["config"], results_of[summary.label]["metadata"]["config"]
        )
        if (summary.config_hash != base.config_hash and differences) or summary.seed != base.seed:
            comparison.warnings.append(
                f"{summary.label} was not run with the same suite/scenes/seed as {base.label} ("
                + ("; ".join(differences) if differences else f"config {summary.config_hash} vs {base.config_hash}")
                + "): only side-by-side numbers, no paired differences"
            )
            continue
        other = _values_by_example(records)
        for probe in sorted(set(base_records) & set(other)):
            shared = sorted(set(base_records[probe]) & set(other[probe]))
            if len(shared) < len(base_records[probe]) or len(shared) < len(other[probe]):
                comparison.warnings.append(
                    f"{summary.label}/{probe}: only {len(shared)} examples in common with {base.label}"
                )
            if not shared:
                continue
            try:
                cls = registry.get(probe)
            except MmdiagError:
                continue
            base_values = _paired_per_example(cls, base_records[probe], loaded[0][1]["probes"].get(probe))
            run_values = _paired_per_example(cls, other[probe], results_of[summary.label]["probes"].get(probe))
            for metric, spec in specs_of(cls).items():
                if spec.paired is None or metric not in base_values or metric not in run_values:
                    continue
                pairs = [
                    (base_values[metric][e], run_values[metric][e])
                    for e in shared
                    if e in base_values[metric] and e in run_values[metric]
                ]
                if not pairs:
                    continue
                paired = paired_difference([a for a, _ in pairs], [b for _, b in pairs], seed, spec.paired)
                if paired is None:
                    continue
                n, mean, low, high = paired
                comparison.paired.append(
                    PairedDifference(
                        probe,
                        metric,
                        summary.label,
                        base.label,
                        n,
                        mean,
                        low,
                        high,
                        spec.direction,
                        _change(spec.direction, low, high, spec.comparable),
                        spec.meaning,
                    )
                )
        if summary.interventions != base.interventions and "hallucination" in base_records and "hallucination" in other:
            timing = [
                results_of[r.label]["metadata"].get("seconds_per_example", {}).get("hallucination")
                for r in (base, summary)
            ]
            mitigation = decompose(
                base_records["hallucination"],
                other["hallucination"],
                (base.label, summary.label),
                summary.interventions,
                (timing[0], timing[1]),
                seed,
            )
            if mitigation is not None:
                comparison.mitigations.append(mitigation)
    return comparison


def _compare_figures(
    runs: list[RunSummary], results: list[dict[str, Any]], registry: ProbeRegistry
) -> list[dict[str, Any]]:
    """Each probe's figure comparing the runs (``Probe.compare_figure``), as dicts."""
    out = []
    names = dict.fromkeys(name for r in results for name in r["probes"])
    for name in names:
        if name not in registry:
            continue
        by_run = {
            run.label: r["probes"][name]
            for run, r in zip(runs, results)
            if name in r["probes"] and "error" not in r["probes"][name]
        }
        figure = registry.get(name).compare_figure(by_run) if by_run else None
        if figure is not None:
            out.append({"probe": name, **asdict(figure)})
    return out


def _paired_per_example(
    cls: Any, records: dict[str, dict[str, Any]], result: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """metric -> example id -> the probe's paired value, from the examples' records and from its result."""
    out: dict[str, dict[str, Any]] = {}
    for example_id, values in records.items():
        for metric, value in cls.paired_values(values).items():
            out.setdefault(metric, {})[example_id] = value
    if result and "error" not in result:
        for metric, by_example in cls.paired_values_of_result(result).items():
            out.setdefault(metric, {}).update(by_example)
    return out


def paired_difference(
    base: list[Any], run: list[Any], seed: int = 0, form: str | None = None
) -> tuple[int, float, float, float] | None:
    """(examples, run - base, 95% CI) over paired per-example values in the spec's ``form``: ``"mean"``, floats (the
    mean of the differences, NaN pairs dropped) or ``"ratio"``, ``(numerator, denominator)`` shares (the difference
    of the two ratios of sums, as the headline metrics are computed, examples with a zero denominator on either side
    dropped); the CI resamples examples. ``form=None`` reads it off the values. None when no example carries the
    metric."""
    is_ratio = bool(base) and isinstance(base[0], (tuple, list))
    if form is not None and base and is_ratio != (form == "ratio"):
        raise MmdiagError(
            f"a paired value is {'a (numerator, denominator) pair' if is_ratio else 'a number'} where "
            f"its metric's spec says '{form}': the probe's paired_values and its MetricSpec disagree"
        )
    if is_ratio:
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


DETAIL_KEYS = ("ci_low", "ci_high", "guide", "status", "undefined")
# gates only judge, and an intervention is what a comparison measures: runs that differ in them still pair
IDENTITY_IGNORED = ("gates", "kind_gates", "interventions")


def config_differences(base: dict[str, Any], other: dict[str, Any], prefix: str = "") -> list[str]:
    """The measuring settings two runs' ``metadata.config`` differ in, as ``"n_scenes 48 vs 160"`` (gates, the
    order of probes and interventions left out: a run with an intervention pairs with its baseline)."""
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
        worse_higher = better > 0 and d.ci_high < 0 and d.mean_difference < -tolerance
        worse_lower = better < 0 and d.ci_low > 0 and d.mean_difference > tolerance
        if worse_higher or worse_lower:
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
            raise MmdiagError(
                f"--out {out} is inside the compared run {run}: pass a folder of its own, e.g. "
                f"{Path(run).parent / 'compare'}"
            )
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
    texts = [
        json.dumps(comparison.to_dict(), indent=2),
        render_compare_markdown(comparison),
        render_compare_html(comparison),
    ]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, texts):
            path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise write_error(err.filename or out, err, "pass a writable --out folder") from err
    return paths
