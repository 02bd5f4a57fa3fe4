"""The probe contract.

A probe's ``__init__`` only stores parameters. The runner asks it for its examples (derived from a
data source's :class:`~mmdiag.sources.contract.Dataset`, deterministic ids), calls ``run_example`` on each
(returning a JSON-able record, plus optional arrays kept in memory for aggregation), and finally
``aggregate`` turns the records into a typed :class:`ProbeResult`. Probes speak only the adapter contract's
canonical names and the data-source contract (:mod:`mmdiag.sources.contract`), never a source's own modules.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from mmdiag.adapters.base import Adapter
from mmdiag.probes.metric_spec import MetricSpec, names_by_kind
from mmdiag.probes.sections import Figure, Finding, ReportSection, default_finding, default_section
from mmdiag.sources.contract import DataRequest, Dataset, Example


@dataclass
class ProbeExample:
    """One unit of work: an id, the data-source example it is about (any
    :class:`~mmdiag.sources.contract.Example`: a synthetic scene, a COCO photo, a POPE question's image...), and
    inputs. examples.jsonl stores the example's ``to_dict`` under ``scene``, the results schema's name."""

    example_id: str
    example: Example
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExampleOutput:
    """What ``run_example`` returns: ``values`` go to examples.jsonl, ``arrays`` stay in memory."""

    values: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Metric:
    """A headline number with its confidence interval (``None`` where none applies), and where one is defined
    the value it would take with no signal (``null``: chance level or a permutation null's mean), the p-value
    of the value against that null, the n behind it, and why the value is undefined when it is ``None``."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    description: str = ""
    null: float | None = None
    p_value: float | None = None
    n: int | None = None
    undefined: str | None = None


@dataclass
class ProbeResult:
    """Base of every probe's typed result: headline metrics (gate-able) plus probe-specific fields."""

    probe: str
    n_examples: int
    n_failed: int
    metrics: dict[str, Metric]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if np.isnan(value) or np.isinf(value) else value
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


class Probe(abc.ABC):
    """A diagnostic. Subclasses set ``name``, ``kinds`` (adapter kinds served) and ``metric_specs`` (every headline
    metric, defined once: :class:`~mmdiag.probes.metric_spec.MetricSpec`); ``metric_names`` (adapter kind -> the
    metrics reported on it) is derived from the specs."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    metric_specs: ClassVar[dict[str, MetricSpec]] = {}
    metric_names: ClassVar[dict[str, tuple[str, ...]]] = {}  # derived from metric_specs
    # False: the probe needs only the model's answers (it runs in an audit from answers, ``mmdiag audit --answers``)
    needs_weights: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "metric_specs" in cls.__dict__ or ("metric_names" not in cls.__dict__ and cls.metric_specs):
            cls.metric_names = names_by_kind(cls.metric_specs, getattr(cls, "kinds", ()))

    def supports(self, adapter: Adapter) -> bool:
        return self.unsupported_reason(adapter) is None

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        """Why this probe cannot measure ``adapter`` (its kind, or weights it needs and the adapter lacks)."""
        if adapter.kind not in self.kinds:
            return f"not applicable to {adapter.kind} models"
        if self.needs_weights and not getattr(adapter, "has_weights", True):
            return "needs the model's weights (attention, hidden states), which an audit from answers does not have"
        return None

    @classmethod
    def answers_only_result(cls, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` measured from answers alone (decisions, no probabilities): each metric whose spec
        ``needs_scores`` is made undefined with the reason."""
        metrics = dict(result.get("metrics", {}))
        for name, spec in cls.metric_specs.items():
            if spec.needs_scores and name in metrics:
                metrics[name] = {
                    **metrics[name],
                    "value": None,
                    "ci_low": None,
                    "ci_high": None,
                    "undefined": "needs the model's yes/no probabilities; an audit from answers has decisions only",
                }
        return {**result, "metrics": metrics}

    def params(self) -> dict[str, Any]:
        """The stored constructor parameters (for run metadata and config hashes)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abc.abstractmethod
    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        """The probe's examples over a data source's examples (``data.source`` gives its vocabulary and the
        counterfactuals it can make), with stable ids."""

    @abc.abstractmethod
    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        """Measure one example."""

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Measure several examples at once; the default runs them one by one. Overrides must give each
        example the same values as ``run_example`` (to a float tolerance), whatever the batch."""
        return [self.run_example(adapter, example) for example in examples]

    @abc.abstractmethod
    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        """Turn successful records (and their arrays, aligned) into the typed result."""

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Per-example numbers that two runs on the same examples can be compared on, pair by pair
        (``mmdiag compare``), in the form the metric's spec names (``paired``: a ``(numerator, denominator)`` for
        ``"ratio"``, a float for ``"mean"``); ``values`` is the example's record. The default offers none."""
        return {}

    @classmethod
    def paired_values_of_result(cls, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per-example numbers of metrics that only exist once the examples are aggregated (e.g. a cross-validated
        readout's out-of-fold hits), read from the probe's result: metric -> example id -> value, in the spec's
        form. The default offers none."""
        return {}

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection | None:
        """The probe's section of the report, from its result (results.json) and its examples.jsonl records alone
        (:mod:`mmdiag.probes.sections`); the default lists the headline metrics with their meaning."""
        return default_section(cls.name, result, cls.metric_specs)

    @classmethod
    def finding(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> Finding | None:
        """What the probe found, in one plain sentence with its key numbers, for the top of the report
        (:class:`~mmdiag.probes.sections.Finding`); the default states the first metric with a value."""
        return default_finding(cls.name, result, cls.metric_specs)

    @classmethod
    def compare_figure(cls, results: dict[str, dict[str, Any]]) -> Figure | None:
        """A figure comparing runs (run label -> this probe's result) for ``mmdiag compare``, or None."""
        return None

    def unusable_data(self, source: Any) -> str | None:
        """Why this probe cannot run on ``source`` at all (the report says so per probe), or ``None``."""
        return None

    def data_request(self) -> DataRequest | None:
        """What this probe needs of the examples (e.g. one object each), or ``None`` for the audit's shared set."""
        return None

    def setup(self, adapter: Adapter) -> None:  # noqa: B027 - optional hook
        """Optional once-per-run preparation (e.g. building an untrained baseline)."""
