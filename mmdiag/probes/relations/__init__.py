"""Relation statements about real photos (What'sUp, VSR): does the image decide which relation holds?

Runs on a data source whose examples carry a ``statement`` (:mod:`mmdiag.sources.relation_sets`). A statement is
either a *choice* (captions that differ only in the relation or in which object is which, the first one true) or
a *judgement* (one caption, true or false).

- Image-to-text models answer ``QUESTION`` about each caption from first-token logits; a choice picks the
  caption with the highest P(yes) (renormalised over yes/no), a judgement is yes iff P(yes) > P(no).
- Dual encoders (CLIP, SigLIP) pick the caption most similar to the image — What'sUp's own protocol; a
  judgement gives them nothing to choose between and is not scored (counted, with the reason).
- The same statements on the image's mean colour give the text-only baseline; ``relation_multimodal_gain`` is the
  paired difference. CIs: percentile bootstrap over entries; ``null``: chance (1 / options; 0.5 per judgement).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.adapters.generative import ScoreRequest
from mmdiag.blind_inputs import mean_colour
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.relations.specs import METRIC_SPECS
from mmdiag.sources.contract import Dataset

QUESTION = "Is this caption true of the image: {caption}"


class RelationsProbe(Probe):
    """Do answers about spatial relations follow the photo or the caption's words?"""

    name = "relations"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_specs = METRIC_SPECS  # every headline metric, defined once
    needs_weights = False  # yes/no answers only (from answers, a choice is right when only the true caption gets yes)

    def __init__(self, resolution: int = 64, seed: int = 0) -> None:
        self.resolution = resolution
        self.seed = seed

    def unusable_data(self, source: Any) -> str | None:
        if not getattr(source, "relation_statements", False):
            return f"the {source.name} data source has no relation statements (use --data relations:FILE --images DIR)"
        return None

    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        return [ProbeExample(f"{ex.example_id}/relations", ex, {"statement": ex.statement}) for ex in data]

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        images = [ex.example.image(self.resolution) for ex in examples]
        blinds = [mean_colour(image) for image in images]
        statements = [ex.inputs["statement"] for ex in examples]
        if adapter.kind == DUAL_ENCODER:
            return [self._dual(adapter, st, image, blind) for st, image, blind in zip(statements, images, blinds)]
        questions = [[QUESTION.format(caption=c.strip()) for c in st.options] for st in statements]
        scores = adapter.answer_scores_batch(
            [ScoreRequest(img, qs) for img, qs in zip(images, questions)]
            + [ScoreRequest(img, qs) for img, qs in zip(blinds, questions)]
        )
        outputs = []
        for k, st in enumerate(statements):
            real, blind = scores[k], scores[len(statements) + k]
            outputs.append(
                ExampleOutput(
                    _common(st)
                    | {
                        "questions": questions[k],
                        "prompts": [adapter.format_prompt(q) for q in questions[k]],
                        "p_yes": real.p_yes.tolist(),
                        "p_no": real.p_no.tolist(),
                        "blind_p_yes": blind.p_yes.tolist(),
                        "blind_p_no": blind.p_no.tolist(),
                        "correct": _correct(st, real.p_yes, real.p_no),
                        "blind_correct": _correct(st, blind.p_yes, blind.p_no),
                    }
                )
            )
        return outputs

    def _dual(self, adapter: Adapter, statement: Any, image: Any, blind: Any) -> ExampleOutput:
        values = _common(statement)
        if not statement.is_choice:
            return ExampleOutput(values | {"unscored": "a single caption: a dual encoder has no alternative to choose"})
        sims = adapter.similarity([image, blind], list(statement.options)).float().cpu().numpy()
        return ExampleOutput(
            values
            | {
                "similarity": sims[0].tolist(),
                "blind_similarity": sims[1].tolist(),
                "correct": float(np.argmax(sims[0]) == 0),
                "blind_correct": float(np.argmax(sims[1]) == 0),
            }
        )

    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        scored = [r for r in records if r.get("correct") is not None]
        result = ProbeResult(probe=self.name, n_examples=len(records), n_failed=0, metrics={})
        unscored = len(records) - len(scored)
        if unscored:
            reason = next(r["unscored"] for r in records if r.get("correct") is None)
            result.notes.append(f"{unscored} of {len(records)} statements not scored: {reason}")
        if not scored:
            why = "no statement could be scored" + (f" ({result.notes[0]})" if result.notes else "")
            result.metrics = {
                name: Metric(None, description=METRIC_SPECS[name].meaning, undefined=why) for name in METRIC_SPECS
            }
            return result
        correct = np.array([r["correct"] for r in scored], dtype=float)
        blind = np.array([r["blind_correct"] for r in scored], dtype=float)
        chance = float(np.mean([r["chance"] for r in scored]))
        n = len(scored)

        def metric(values: np.ndarray, name: str, null: float) -> Metric:
            low, high = bootstrap_ci(values, seed=self.seed)
            return Metric(float(values.mean()), low, high, METRIC_SPECS[name].meaning, null=null, n=n)

        result.metrics = {
            "relation_accuracy": metric(correct, "relation_accuracy", chance),
            "blind_relation_accuracy": metric(blind, "blind_relation_accuracy", chance),
            "relation_multimodal_gain": metric(correct - blind, "relation_multimodal_gain", 0.0),
        }
        by_relation: dict[str, list[float]] = {}
        for r in scored:
            by_relation.setdefault(r["relation"] or "(unnamed)", []).append(r["correct"])
        result.notes.append(
            "accuracy by relation: "
            + ", ".join(f"{rel} {np.mean(v):.2f} (n={len(v)})" for rel, v in sorted(by_relation.items()))
        )
        return result

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, float]:
        if values.get("correct") is None:
            return {}
        return {
            "relation_accuracy": float(values["correct"]),
            "relation_multimodal_gain": float(values["correct"]) - float(values["blind_correct"]),
        }


def _common(statement: Any) -> dict[str, Any]:
    return {
        "captions": list(statement.options),
        "label": statement.label,
        "relation": statement.relation,
        "kind": "choice" if statement.is_choice else "judgement",
        "chance": 1 / len(statement.options) if statement.is_choice else 0.5,
    }


def _correct(statement: Any, p_yes: np.ndarray, p_no: np.ndarray) -> float:
    """A choice: the true caption (first) has the highest renormalised P(yes); a judgement: the yes/no decision
    matches the label."""
    if statement.is_choice:
        total = p_yes + p_no
        norm = np.divide(p_yes, total, out=np.full_like(p_yes, 0.5), where=total > 0)
        return float(np.argmax(norm) == 0 and norm[0] > np.max(norm[1:]))
    return float((p_yes[0] > p_no[0]) == (statement.label == "yes"))
