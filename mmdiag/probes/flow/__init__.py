"""Information flow: where does the image's evidence enter the answer, and is the decoded layout used?

Interventions turn the attention probe's correlations into causes (:mod:`mmdiag.interventions`). Per scene the
probe asks presence questions (one object present, one absent) and relation questions (a pair per axis, the
statement and its converse), and measures the exact P(correct answer) (P(yes) renormalised over yes/no, or P(no)):

- as the model computes it;
- with attention from the question (every position after the image) to every image token blocked in every LLM
  layer (``image_dependence``), and in each window of ``window`` consecutive layers, from the question and,
  separately, from the last position only (Geva et al. 2023's knockout, as Zhang et al. 2024 use it for VLMs): a
  curve over layers of the paired change with a simultaneous CI band, and ``read_until_layer``, the layer from which
  on knocking out the image changes nothing detectable;
- under FastV (half the image tokens pruned from layer K on, every K): ``fastv_safe_layer`` checks the paper's claim
  that this is safe after layer 2;
- left/right questions with the scene's image tokens replaced at the projector output by its mirror image's
  (``layout_use``): the spatial probe says position is *decodable*, this says whether the answer *uses* it; the
  mirror image itself bounds it (``mirror_flip``).

Cost per scene: 1 + 2 (L - w + 2) + (L - 1) scorings of its questions and L + 3 of its left/right ones; under a
knockout an image's questions continue from one cached prefix computed under it, FastV's conditions run in full.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmdiag.adapters.base import GENERATIVE, Adapter
from mmdiag.adapters.generative import ScoreRequest
from mmdiag.interventions.fastv import FastV
from mmdiag.interventions.knockout import Knockout
from mmdiag.metrics.pope_sampling import PRESENCE_TEMPLATE
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.flow import patching
from mmdiag.probes.flow.curve import Change, changes, first_safe, read_until
from mmdiag.probes.flow.specs import METRIC_SPECS
from mmdiag.probes.hallucination.plan import NO, YES, relation_items
from mmdiag.probes.sections import Figure, Finding, ReportSection
from mmdiag.sources.contract import Dataset, EditUnavailable

SOURCES = ("question", "last")


@dataclass
class FlowResult(ProbeResult):
    """The knockout curves per source (window -> paired change in P(correct) with its simultaneous CI), the
    last position's knockout in every layer, FastV's change in accuracy per K, and the geometry."""

    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    last_position_all: dict[str, float] = field(default_factory=dict)
    fastv: list[dict[str, float]] = field(default_factory=list)
    layout: list[dict[str, float]] = field(default_factory=list)  # mirror tokens patched from layer l on: flips
    n_layers: int = 0
    window: int = 1


class FlowProbe(Probe):
    """Where does the image's evidence enter the answer (knockout per layer window), and is layout used?"""

    name = "flow"
    kinds = (GENERATIVE,)
    metric_specs = METRIC_SPECS

    def __init__(self, resolution: int = 64, seed: int = 0, window: int = 1, fastv_ratio: float = 0.5) -> None:
        self.resolution = resolution
        self.seed = seed
        self.window = window
        self.fastv_ratio = fastv_ratio

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        if (reason := super().unsupported_reason(adapter)) is not None:
            return reason
        if (reason := Knockout().unsupported_reason(adapter)) is not None:
            return f"knocks out attention to image tokens, which this model cannot take: {reason}"
        if self.window > len(adapter.lm_layers()):
            return f"window={self.window} is wider than the model's {len(adapter.lm_layers())} LLM layers"
        return None

    def unusable_data(self, source: Any) -> str | None:
        if not getattr(source, "presence", True):
            return f"the {source.name} data source does not say which objects are absent (presence questions need it)"
        return None

    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        vocabulary = data.source.vocabulary()
        out = []
        for index, scene in enumerate(data):
            names = list(dict.fromkeys(scene.object_names))
            absent = [v for v in vocabulary if v not in names]
            if not names or not absent:
                continue
            rng = np.random.default_rng([self.seed, index, 41])
            questions = [
                (PRESENCE_TEMPLATE.format(object=names[int(rng.integers(len(names)))]), YES, "presence"),
                (PRESENCE_TEMPLATE.format(object=absent[int(rng.integers(len(absent)))]), NO, "presence"),
            ]
            questions += [
                (i.question, i.label, f"relation_{i.axis}") for i in relation_items(scene, index, self.seed, 1)
            ]
            out.append(ProbeExample(f"{scene.example_id}/flow", scene, {"questions": questions}))
        return out

    def conditions(self, n_layers: int) -> dict[str, Any]:
        """Condition name -> the intervention it applies (``None``: as measured)."""
        out: dict[str, Any] = {"none": None}
        for source in SOURCES:
            out[f"{source}:all"] = Knockout(layers="all", **{"from": source})
            for start in range(n_layers - self.window + 1):
                out[f"{source}:{start}"] = Knockout(layers=f"{start}-{start + self.window - 1}", **{"from": source})
        for k in range(1, n_layers):
            out[f"fastv:{k}"] = FastV(k=k, ratio=self.fastv_ratio)
        return out

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        images = [ex.example.image(self.resolution) for ex in examples]
        requests = [ScoreRequest(img, [q for q, _, _ in ex.inputs["questions"]]) for img, ex in zip(images, examples)]
        measured: dict[str, list[Any]] = {}
        for name, intervention in self.conditions(len(adapter.lm_layers())).items():
            scope = intervention.applied(adapter) if intervention is not None else contextlib.nullcontext()
            with scope:
                measured[name] = adapter.answer_scores_batch(requests)
        outputs = []
        for i, (example, image) in enumerate(zip(examples, images)):
            questions = example.inputs["questions"]
            values: dict[str, Any] = {
                "questions": [q for q, _, _ in questions],
                "labels": [label for _, label, _ in questions],
                "kinds": [kind for _, _, kind in questions],
                "p_yes": {name: scores[i].p_yes.tolist() for name, scores in measured.items()},
                "p_no": {name: scores[i].p_no.tolist() for name, scores in measured.items()},
            }
            values["patch"] = self._patch(adapter, example, image, questions)
            outputs.append(ExampleOutput(values))
        return outputs

    def _patch(self, adapter: Any, example: ProbeExample, image: Any, questions: list) -> dict[str, Any]:
        """Left/right questions on the scene, on its mirror image, and on the scene with the mirror's projector output
        (``projector``) or its image tokens' states from LLM layer l on (``layer:l``) patched in."""
        asked = [(q, label) for q, label, kind in questions if kind == "relation_horizontal"]
        if not asked:
            return {"skipped": "no left/right pair of distinct objects in the scene"}
        try:
            mirror = example.example.mirrored("horizontal").image(self.resolution)
        except EditUnavailable as err:
            return {"skipped": f"the scene cannot be mirrored: {err}"}
        request = ScoreRequest(image, [q for q, _ in asked])
        scored = {"scene": adapter.answer_scores_batch([request])[0]}
        with patching.recording(adapter) as kept:
            scored["mirror"] = adapter.answer_scores_batch([ScoreRequest(mirror, request.questions)])[0]
        for name, layer in [("projector", None), *((f"layer:{i}", i) for i in range(len(adapter.lm_layers())))]:
            try:
                with patching.patched(adapter, kept, layer):
                    scored[name] = adapter.answer_scores_batch([request])[0]
            except patching.PatchMismatch as err:
                return {"skipped": str(err)}
        return {
            "questions": request.questions,
            "labels": [label for _, label in asked],
            "p_yes": {k: s.p_yes.tolist() for k, s in scored.items()},
            "p_no": {k: s.p_no.tolist() for k, s in scored.items()},
        }

    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        result = FlowResult(probe=self.name, n_examples=len(records), n_failed=0, metrics={}, window=self.window)
        if not records:
            result.metrics = {
                name: Metric(None, description=spec.meaning, undefined="no scene had a question to ask")
                for name, spec in METRIC_SPECS.items()
            }
            return result
        n_layers = len(adapter.lm_layers())
        for key, value in flow_result(records, n_layers, self.window, self.seed, result.metrics, result.notes).items():
            setattr(result, key, value)
        return result

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        correct = _p_correct(values)
        out: dict[str, Any] = {"image_dependence": float(np.mean(correct["none"] - correct["question:all"]))}
        patch = values.get("patch") or {}
        if "p_yes" in patch:
            flips = _flips(patch)
            out["layout_use"], out["mirror_flip"] = float(flips["projector"].mean()), float(flips["mirror"].mean())
        return out

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection | None:
        from mmdiag.probes.flow.report import section

        return section(result)

    @classmethod
    def finding(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> Finding | None:
        from mmdiag.probes.flow.report import finding

        return finding(result)

    @classmethod
    def compare_figure(cls, results: dict[str, dict[str, Any]]) -> Figure | None:
        from mmdiag.probes.flow.report import compare_figure

        return compare_figure(results)


def _p_correct(values: dict[str, Any]) -> dict[str, np.ndarray]:
    """Condition -> P(correct answer) per question (P(yes) renormalised over yes/no, or P(no))."""
    truth = np.array([label == YES for label in values["labels"]])
    out = {}
    for name, p_yes in values["p_yes"].items():
        yes, no = np.asarray(p_yes, dtype=float), np.asarray(values["p_no"][name], dtype=float)
        total = yes + no
        norm = np.divide(yes, total, out=np.full_like(yes, 0.5), where=total > 0)
        out[name] = np.where(truth, norm, 1 - norm)
    return out


def _correct(values: dict[str, Any]) -> dict[str, np.ndarray]:
    """Condition -> 1.0 where the decision (P(yes) > P(no)) is right."""
    truth = np.array([label == YES for label in values["labels"]])
    return {
        name: ((np.asarray(p_yes) > np.asarray(values["p_no"][name])) == truth).astype(float)
        for name, p_yes in values["p_yes"].items()
    }


def _flips(patch: dict[str, Any]) -> dict[str, np.ndarray]:
    """Condition -> 1.0 where the decision differs from the scene's (mirror, projector, layer:l)."""
    says = {k: np.asarray(p) > np.asarray(patch["p_no"][k]) for k, p in patch["p_yes"].items()}
    return {k: (v != says["scene"]).astype(float) for k, v in says.items() if k != "scene"}


def flow_result(
    records: list[dict[str, Any]], n_layers: int, width: int, seed: int, metrics: dict, notes: list
) -> dict[str, Any]:
    """The metrics (filled into ``metrics``), notes and the curves of the probe's result from its records."""
    p_correct = [_p_correct(r) for r in records]
    n = int(sum(len(r["labels"]) for r in records))
    starts = list(range(n_layers - width + 1))
    curves: dict[str, list[dict[str, Any]]] = {}
    windows: dict[str, list[Change]] = {}
    for source in SOURCES:
        names = [f"{source}:{s}" for s in starts]
        deltas = [np.stack([pc[name] - pc["none"] for name in names], axis=1) for pc in p_correct]
        windows[source] = changes(deltas, seed, family=len(names))
        curves[source] = [
            {"start": s, "end": s + width - 1, "delta": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high}
            for s, c in zip(starts, windows[source])
        ]
    (everything,) = changes([(pc["none"] - pc["question:all"])[:, None] for pc in p_correct], seed)
    (last_all,) = changes([(pc["none"] - pc["last:all"])[:, None] for pc in p_correct], seed)
    spec = METRIC_SPECS
    metrics["image_dependence"] = Metric(
        everything.value, everything.ci_low, everything.ci_high, spec["image_dependence"].meaning, null=0.0, n=n
    )
    until = read_until(windows["question"], starts, width)
    metrics["read_until_layer"] = Metric(float(until), description=spec["read_until_layer"].meaning, n=n)
    peak_index = int(np.argmin([c.value for c in windows["question"]]))
    peak = windows["question"][peak_index]
    metrics["peak_window_drop"] = Metric(
        -peak.value, -peak.ci_high, -peak.ci_low, spec["peak_window_drop"].meaning, null=0.0, n=n
    )
    notes.append(
        f"the image is read most at LLM layers {starts[peak_index]}-{starts[peak_index] + width - 1} "
        f"(P(correct) falls by {-peak.value:.3f} when the question's attention to it is blocked there); blocking it in "
        f"every layer from the last position only costs {last_all.value:.3f} [{last_all.ci_low:.3f}, "
        f"{last_all.ci_high:.3f}]"
    )
    correct = [_correct(r) for r in records]
    layers = list(range(1, n_layers))
    fastv = (
        changes(
            [np.stack([c[f"fastv:{k}"] - c["none"] for k in layers], axis=1) for c in correct], seed, family=len(layers)
        )
        if layers
        else []
    )
    safe = first_safe(fastv, layers)
    metrics["fastv_safe_layer"] = Metric(
        float(safe) if safe is not None else None,
        description=spec["fastv_safe_layer"].meaning,
        n=n,
        undefined=None
        if safe is not None
        else "pruning half the image tokens changes accuracy detectably from every layer K (or there is no K)",
    )
    patched = [r["patch"] for r in records if "p_yes" in (r.get("patch") or {})]
    layout: list[dict[str, Any]] = []
    if patched:
        flips = [_flips(p) for p in patched]
        n_lr = int(sum(len(f["projector"]) for f in flips))
        use, mirror = changes([np.stack([f["projector"], f["mirror"]], axis=1) for f in flips], seed)
        metrics["layout_use"] = Metric(use.value, use.ci_low, use.ci_high, spec["layout_use"].meaning, null=0.0, n=n_lr)
        metrics["mirror_flip"] = Metric(
            mirror.value, mirror.ci_low, mirror.ci_high, spec["mirror_flip"].meaning, n=n_lr
        )
        by_layer = changes(
            [np.stack([f[f"layer:{i}"] for i in range(n_layers)], axis=1) for f in flips], seed, family=n_layers
        )
        layout = [
            {"layer": i, "flips": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high} for i, c in enumerate(by_layer)
        ]
        used = [i for i, c in enumerate(by_layer) if c.ci_low > 0]
        metrics["layout_read_by_layer"] = Metric(
            float(max(used) + 1) if used else 0.0, description=spec["layout_read_by_layer"].meaning, n=n_lr
        )
    else:
        why = "no scene had a left/right pair of distinct objects that can be mirrored"
        for name in ("layout_use", "mirror_flip", "layout_read_by_layer"):
            metrics[name] = Metric(None, description=spec[name].meaning, undefined=why)
    return {
        "curves": curves,
        "last_position_all": {"delta": -last_all.value, "ci_low": -last_all.ci_high, "ci_high": -last_all.ci_low},
        "fastv": [
            {"k": k, "delta_accuracy": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high} for k, c in zip(layers, fastv)
        ],
        "layout": layout,
        "n_layers": n_layers,
        "window": width,
    }
