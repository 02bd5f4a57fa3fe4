"""What a mitigation changed in the hallucination probe's answers, decomposed (``mmdiag compare`` of a run with an
intervention against its baseline).

A gain in POPE accuracy can come from better discrimination or from a shifted yes-ratio alone (contrastive decoding's
POPE gains are largely the latter, arXiv 2504.10020). Over the examples both runs measured, per POPE split: the
paired difference (run − baseline) of accuracy, of the yes-ratio and of the AUROC of P(yes) between present and
absent objects (threshold-free), each with a 95% CI from one paired bootstrap over examples (the same draws for all
three), and a verdict: ``better discrimination`` (the AUROC rose), ``yes-ratio shift only`` (accuracy or the
yes-ratio moved, the AUROC did not), ``more correct, worse ranking`` (accuracy rose, the AUROC fell: typically
P(yes) saturated at 0 or 1 by a plausibility cutoff, VCD's and PAI's, which ties the ranking), ``worse
discrimination`` or ``no detectable change``. The share of questions whose normalised P(yes) is exactly 0 or 1 is
given for both runs. Its cost: seconds per example of the run against the baseline's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmdiag.metrics.discrimination import auroc

SPLITS = ("random", "popular", "adversarial")
DRAWS = 1000


@dataclass
class Delta:
    value: float | None
    ci_low: float | None
    ci_high: float | None

    def excludes_zero(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)

    def text(self) -> str:
        if self.value is None:
            return "undefined"
        ci = f" [{self.ci_low:+.3f}, {self.ci_high:+.3f}]" if self.ci_low is not None else ""
        return f"{self.value:+.3f}{ci}"


@dataclass
class SplitDecomposition:
    split: str
    n_examples: int
    n_questions: int
    accuracy: Delta
    yes_ratio: Delta
    auroc: Delta
    verdict: str
    saturated: tuple[float, float] = (0.0, 0.0)  # share of P(yes) exactly 0 or 1: baseline, run


@dataclass
class Mitigation:
    """A run's hallucination answers against the baseline's, split by split, and what the run cost."""

    run: str
    baseline: str
    interventions: list[str]
    splits: list[SplitDecomposition]
    cost_ratio: float | None  # seconds per example, run / baseline (hallucination probe)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        head = f"{self.run} vs {self.baseline}" + (f" ({' + '.join(self.interventions)})" if self.interventions else "")
        out = []
        for s in self.splits:
            out.append(
                f"{head}, POPE {s.split}: {s.verdict} - Δ accuracy {s.accuracy.text()}, Δ yes-ratio "
                f"{s.yes_ratio.text()}, Δ AUROC {s.auroc.text()} over {s.n_examples} examples"
            )
        if self.cost_ratio is not None:
            out.append(f"{head}: {self.cost_ratio:.2f}× the baseline's time per hallucination example")
        return out


def _questions(values: dict[str, Any], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(says yes, P(yes) normalised, truth) of an example's questions in ``split``."""
    keep = [split in sp for sp in values["splits"]]
    p_yes = np.asarray(values["p_yes"], dtype=float)[keep]
    p_no = np.asarray(values["p_no"], dtype=float)[keep]
    total = p_yes + p_no
    norm = np.divide(p_yes, total, out=np.full_like(p_yes, 0.5), where=total > 0)
    truth = np.asarray([label == "yes" for label in values["labels"]], dtype=bool)[keep]
    return p_yes > p_no, norm, truth


def _stats(says: np.ndarray, norm: np.ndarray, truth: np.ndarray) -> tuple[float, float, float | None]:
    return float(np.mean(says == truth)), float(np.mean(says)), auroc(norm, truth)


def decompose_split(
    base: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]], split: str, seed: int = 0
) -> SplitDecomposition | None:
    """The split's paired decomposition over the example ids both runs hold (``None`` without questions)."""
    shared = sorted(set(base) & set(other))
    rows = []
    for example in shared:
        a, b = _questions(base[example], split), _questions(other[example], split)
        if len(a[0]) and len(a[0]) == len(b[0]) and np.array_equal(a[2], b[2]):
            rows.append((a, b))
    if not rows:
        return None

    def joined(index: list[int], side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [rows[i][side] for i in index]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]

    everything = list(range(len(rows)))
    base_stats, run_stats = _stats(*joined(everything, 0)), _stats(*joined(everything, 1))
    rng = np.random.default_rng(seed)
    draws: list[list[float]] = [[], [], []]
    for _ in range(DRAWS):
        index = list(rng.integers(0, len(rows), len(rows)))
        a, b = _stats(*joined(index, 0)), _stats(*joined(index, 1))
        for k in range(3):
            if a[k] is not None and b[k] is not None:
                draws[k].append(b[k] - a[k])

    def delta(k: int) -> Delta:
        if base_stats[k] is None or run_stats[k] is None:
            return Delta(None, None, None)
        if not draws[k]:
            return Delta(float(run_stats[k] - base_stats[k]), None, None)
        low, high = np.percentile(draws[k], [2.5, 97.5])
        return Delta(float(run_stats[k] - base_stats[k]), float(low), float(high))

    accuracy, yes_ratio, discrimination = delta(0), delta(1), delta(2)
    saturated = tuple(float(np.mean((j[1] == 0) | (j[1] == 1))) for j in (joined(everything, 0), joined(everything, 1)))
    if discrimination.excludes_zero() and discrimination.value > 0:
        verdict = "better discrimination"
    elif discrimination.excludes_zero() and accuracy.excludes_zero() and accuracy.value > 0:
        verdict = (
            f"more correct, worse ranking (the AUROC fell; P(yes) saturated at 0 or 1 in {saturated[1]:.0%} of "
            f"questions against {saturated[0]:.0%})"
        )
    elif discrimination.excludes_zero():
        verdict = "worse discrimination"
    elif accuracy.excludes_zero() or yes_ratio.excludes_zero():
        verdict = "yes-ratio shift only (the AUROC did not move)"
    else:
        verdict = "no detectable change"
    return SplitDecomposition(
        split,
        len(rows),
        int(sum(len(r[0][0]) for r in rows)),
        accuracy,
        yes_ratio,
        discrimination,
        verdict,
        saturated,  # type: ignore[arg-type]
    )


def decompose(
    base: dict[str, dict[str, Any]],
    other: dict[str, dict[str, Any]],
    labels: tuple[str, str],
    interventions: list[str],
    seconds: tuple[float | None, float | None],
    seed: int = 0,
) -> Mitigation | None:
    """Every split's decomposition of the hallucination probe's records (example id -> values), or ``None`` when the
    runs share no scored question."""
    splits = [d for split in SPLITS if (d := decompose_split(base, other, split, seed)) is not None]
    if not splits:
        return None
    cost = seconds[1] / seconds[0] if seconds[0] and seconds[1] else None
    return Mitigation(labels[1], labels[0], interventions, splits, cost)
