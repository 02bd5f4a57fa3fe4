"""One home per metric: :class:`MetricSpec` says everything mmdiag knows about a headline metric, once.

A probe owns the specs of its metrics (``Probe.metric_specs``, name -> spec, in report order). Everything that
describes a metric is derived from its spec: the metrics a probe reports per model kind (``Probe.metric_names``),
how the reports read it (:mod:`mmdiag.probes.guidance`), the sentence a failed gate prints
(:func:`mmdiag.run.gates.failure_meaning`), how ``mmdiag compare`` pairs two runs on it, and the README's metric
table (:func:`metric_table`). A third-party probe declares its own specs and gets all of that without touching
mmdiag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BETTER = ("higher", "lower", "near_reference", "neither")
PAIRINGS = ("ratio", "mean")
# how two runs on the same examples are compared on a metric (mmdiag compare):
#   ratio: each example gives (numerator, denominator); the paired difference is the difference of the two ratios of
#          sums (what the headline metric is), CI by resampling examples
#   mean:  each example gives a number; the paired difference is the mean of the per-example differences
PAIRING_TEXT = {
    "ratio": "difference of the ratio of sums over the shared examples, bootstrap CI over examples",
    "mean": "mean of the per-example differences over the shared examples, bootstrap CI over examples",
}

Reference = float | Callable[[dict[str, Any]], float | None] | None


@dataclass(frozen=True)
class MetricSpec:
    """Everything about one headline metric.

    ``meaning``: one plain line. ``better``: higher, lower, near_reference (closest to ``reference`` is best) or
    neither (descriptive). ``reference``: the value a model without the signal gives (chance, an image-blind model)
    or, with ``reference_is="ideal"``, the best value - a number, a function of the probe's result (e.g. the image's
    share of tokens), or None to use the metric's own ``null``; ``reference_label`` names it. ``kinds``: the adapter
    kinds the probe reports it on (empty: every kind the probe serves). ``computed``: how it is computed;
    ``ci``: how its 95% CI is made ("" where it has none). ``paired``: how two runs on the same examples are compared
    on it (``"ratio"`` or ``"mean"``, see :data:`PAIRINGS`; None: not pairable, ``unpaired`` says why) and
    ``paired_unit`` what one pair is. ``failure``: what a failed gate on it means, in one plain sentence.
    ``needs_scores``: computed from the model's probabilities, so undefined in an audit from answers alone.
    ``max_ci_width``: a wider 95% CI marks the value unstable. ``unstable_if``: a check on the metric (its dict)
    returning why the value is not interpretable, or None. ``comparable``: whether a worse paired value in
    ``mmdiag compare`` is a regression (not for numbers that follow the design, like image-token mass).
    """

    meaning: str
    better: str = "higher"
    reference: Reference = None
    reference_label: str = ""
    reference_is: str = "no_signal"  # or "ideal": the reference is the best value (no prior, perfect calibration)
    kinds: tuple[str, ...] = ()
    computed: str = ""
    ci: str = ""
    paired: str | None = None
    paired_unit: str = "example"
    unpaired: str = ""
    failure: str = ""
    max_ci_width: float | None = None
    unstable_if: Callable[[dict[str, Any]], str | None] | None = field(default=None, compare=False)
    needs_scores: bool = False  # computed from probabilities, not decisions: undefined in an audit from answers
    comparable: bool = True  # False: the value depends on the design (e.g. how many image tokens), so a paired
    #                          difference between two models is no regression (mmdiag compare)

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}, got {self.better!r}")
        if self.reference_is not in ("no_signal", "ideal"):
            raise ValueError(f"reference_is must be no_signal or ideal, got {self.reference_is!r}")
        if self.paired is not None and self.paired not in PAIRINGS:
            raise ValueError(f"paired must be one of {PAIRINGS} or None, got {self.paired!r}")

    @property
    def direction(self) -> int:
        """+1 when higher is better, -1 when lower is, 0 otherwise (and for numbers that follow the design)."""
        if not self.comparable:
            return 0
        return {"higher": 1, "lower": -1}.get(self.better, 0)

    def failure_text(self, metric: str) -> str:
        """The sentence a failed gate on this metric prints."""
        return self.failure or f"{metric} is on the wrong side of its threshold ({self.meaning})"

    def pairing_text(self) -> str:
        if self.paired is None:
            return f"not paired: {self.unpaired}" if self.unpaired else "not paired"
        return f"per {self.paired_unit}: {PAIRING_TEXT[self.paired]}"


FAILED_EXAMPLES = MetricSpec(
    "examples that raised an error and were not scored",
    better="lower",
    reference=0.0,
    reference_label="a clean run",
    reference_is="ideal",
    computed="examples recorded with an error",
    ci="",
    unpaired="an integrity count, not a measurement",
    failure="examples failed to run: the numbers cover only part of the suite (see the failed examples)",
)
INTEGRITY_METRICS = {"failed_examples": FAILED_EXAMPLES}  # offered by every probe


def specs_of(probe_cls: Any) -> Mapping[str, MetricSpec]:
    """A probe class's metric specs (empty for a probe that declares none)."""
    return getattr(probe_cls, "metric_specs", None) or {}


def spec_for(probe_cls: Any, metric: str) -> MetricSpec | None:
    """The probe's spec for ``metric`` (``failed_examples`` for every probe), or None if it declares none."""
    if metric in INTEGRITY_METRICS:
        return INTEGRITY_METRICS[metric]
    return specs_of(probe_cls).get(metric)


def names_by_kind(specs: Mapping[str, MetricSpec], kinds: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``{kind: metric names}`` from the specs (a spec with no ``kinds`` is reported on every kind)."""
    return {kind: tuple(name for name, spec in specs.items() if not spec.kinds or kind in spec.kinds) for kind in kinds}


def metric_table(probe_classes: Mapping[str, Any]) -> str:
    """The Markdown table of every metric of ``probe_classes`` (name -> class): name, kinds, meaning, better,
    reference, CI, pairing and what a failed gate means. The README's metric table is this, generated."""
    arrows = {"higher": "↑", "lower": "↓", "near_reference": "≈ ref", "neither": "·"}
    lines = [
        "| metric | models | meaning | better | reference | CI | paired in compare | a failed gate means |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for probe, cls in probe_classes.items():
        for name, spec in specs_of(cls).items():
            reference = (spec.reference_label or ("the metric's null" if spec.reference is None else "")).strip()
            if isinstance(spec.reference, (int, float)):
                reference = f"{spec.reference:g} ({reference})" if reference else f"{spec.reference:g}"
            kinds = ", ".join(k.replace("_", " ") for k in (spec.kinds or cls.kinds))
            cells = [
                f"`{probe}.{name}`",
                kinds,
                spec.meaning,
                arrows[spec.better],
                reference,
                spec.ci or "–",
                spec.pairing_text(),
                spec.failure or "–",
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
