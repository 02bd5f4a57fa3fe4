"""Visual hallucination, first form: POPE-style presence questions on scenes, with a blind baseline.

For each scene: every present object is asked about (label yes) and as many absent object types
(label no, drawn at random from the vocabulary). A counterfactual pair asks about the first object again
on the scene re-rendered without it (exact ground truth: the answer must turn to no), giving *evidence
sensitivity* (share of answers that change) and *prior persistence* (share of yes that survive). Generative models answer from first-token logits
(yes iff P(yes) > P(no)); each question is asked again with the image replaced by its mean colour, so
the *multimodal gain* (accuracy with image - accuracy blind) shows whether answers use the image.
Dual encoders are scored pairwise: does "a photo of a <present>" beat "a photo of a <absent>"?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.metrics.calibration import expected_calibration_error, reliability_bins
from mmdiag.metrics.pope import NO, YES, pope_scores
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.scenes.blind import mean_colour
from mmdiag.scenes.edits import remove_object
from mmdiag.scenes.model import Scene
from mmdiag.scenes.render import render
from mmdiag.scenes.vocabulary import OBJECT_TYPES

QUESTION = "Is there a {name} in the image?"
CAPTION = "a photo of a {name}"


@dataclass
class HallucinationResult(ProbeResult):
    """POPE scores with the image and blind, per kind of model."""

    pope: dict[str, Any] = field(default_factory=dict)
    blind_pope: dict[str, Any] = field(default_factory=dict)
    reliability: list[dict[str, float]] = field(default_factory=list)  # bins of P(yes) vs observed yes
    question_template: str = QUESTION


class HallucinationProbe(Probe):
    """POPE-style presence questions with a mean-colour blind baseline."""

    name = "hallucination"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_names = {
        GENERATIVE: ("accuracy", "precision", "recall", "f1", "yes_ratio", "blind_accuracy", "blind_yes_ratio", "multimodal_gain",
                     "ece", "evidence_sensitivity", "prior_persistence"),
        DUAL_ENCODER: ("pair_accuracy", "blind_pair_accuracy", "multimodal_gain"),
    }

    def __init__(self, resolution: int = 64, seed: int = 0, max_questions: int = 3) -> None:
        self.resolution = resolution
        self.seed = seed
        self.max_questions = max_questions

    def examples(self, scenes: list[Scene], adapter: Adapter) -> list[ProbeExample]:
        out = []
        for index, scene in enumerate(scenes):
            if not scene.objects:
                continue
            rng = np.random.default_rng([self.seed, index, 7])
            present = scene.object_names[: self.max_questions]
            absent_pool = [t for t in OBJECT_TYPES if not scene.has(t)]
            absent = [str(t) for t in rng.choice(absent_pool, size=len(present), replace=False)]
            out.append(ProbeExample(f"{scene.scene_id}/pope", scene, {"present": present, "absent": absent}))
        return out

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """All questions of all examples, real and blind, scored in one padded batch."""
        images = [render(ex.scene, self.resolution) for ex in examples]
        blinds = [mean_colour(image) for image in images]
        names = [ex.inputs["present"] + ex.inputs["absent"] for ex in examples]
        if adapter.kind == DUAL_ENCODER:
            return [self._pairs(adapter, image, blind, ex) for image, blind, ex in zip(images, blinds, examples)]
        edited = [remove_object(ex.scene, ex.inputs["present"][0]) for ex in examples]
        batch_images, questions = [], []
        for image, blind, n, ex, after in zip(images, blinds, names, examples, edited):
            batch_images += [image] * len(n) + [blind] * len(n) + [render(after, self.resolution)]
            questions += [QUESTION.format(name=name) for name in n + n] + [QUESTION.format(name=ex.inputs["present"][0])]
        scores = adapter.answer_scores(batch_images, questions)
        outputs, offset = [], 0
        for ex, n, after in zip(examples, names, edited):
            k = len(n)
            real, blind, removed = slice(offset, offset + k), slice(offset + k, offset + 2 * k), offset + 2 * k
            offset += 2 * k + 1
            outputs.append(ExampleOutput({
                "questions": questions[real],
                "labels": [YES] * len(ex.inputs["present"]) + [NO] * len(ex.inputs["absent"]),
                "p_yes": scores.p_yes[real].tolist(), "p_no": scores.p_no[real].tolist(),
                "blind_p_yes": scores.p_yes[blind].tolist(), "blind_p_no": scores.p_no[blind].tolist(),
                "counterfactual": {"edit": after.edit, "question": questions[removed], "scene_after": after.to_dict(),
                                   "p_yes": float(scores.p_yes[removed]), "p_no": float(scores.p_no[removed])},
            }))
        return outputs

    def _pairs(self, adapter: Adapter, image: Any, blind: Any, example: ProbeExample) -> ExampleOutput:
        present, absent = example.inputs["present"], example.inputs["absent"]
        texts = [CAPTION.format(name=n) for n in present + absent]
        sims = adapter.similarity([image, blind], texts).cpu().numpy()
        k = len(present)
        return ExampleOutput({
            "captions": texts,
            "sim_present": sims[0, :k].tolist(), "sim_absent": sims[0, k:].tolist(),
            "blind_sim_present": sims[1, :k].tolist(), "blind_sim_absent": sims[1, k:].tolist(),
        })

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, float]:
        if "labels" in values:
            truth = np.array([lab == YES for lab in values["labels"]])
            says = np.array(values["p_yes"]) > np.array(values["p_no"])
            blind = np.array(values["blind_p_yes"]) > np.array(values["blind_p_no"])
            return {"accuracy": float((says == truth).mean()), "yes_ratio": float(says.mean()),
                    "multimodal_gain": float((says == truth).mean() - (blind == truth).mean())}
        real = np.array(values["sim_present"]) > np.array(values["sim_absent"])
        blind = np.array(values["blind_sim_present"]) > np.array(values["blind_sim_absent"])
        return {"pair_accuracy": float(real.mean()), "multimodal_gain": float(real.mean() - blind.mean())}

    def aggregate(self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]) -> ProbeResult:
        if adapter.kind == DUAL_ENCODER:
            return self._aggregate_pairs(records)
        rows = [
            (r["example_id"], label, py > pn, bpy > bpn, py / (py + pn) if py + pn > 0 else 0.5)
            for r in records
            for label, py, pn, bpy, bpn in zip(r["labels"], r["p_yes"], r["p_no"], r["blind_p_yes"], r["blind_p_no"])
        ]
        p_yes = np.array([row[4] for row in rows])
        clusters = [row[0] for row in rows]
        labels = [row[1] for row in rows]
        says = np.array([row[2] for row in rows], dtype=bool)
        blind_says = np.array([row[3] for row in rows], dtype=bool)
        truth = np.array([lab == YES for lab in labels], dtype=bool)
        real = pope_scores([YES if s else NO for s in says], labels)
        blind = pope_scores([YES if s else NO for s in blind_says], labels)
        gain = (says == truth).astype(float) - (blind_says == truth).astype(float)

        def ci(values: np.ndarray) -> tuple[float, float]:
            return bootstrap_ci(values, clusters=clusters, seed=self.seed)

        metrics = {
            "accuracy": Metric(real.accuracy, *ci((says == truth).astype(float)), "POPE accuracy with the image"),
            "precision": Metric(real.precision, description="POPE precision (yes = positive)"),
            "recall": Metric(real.recall, description="POPE recall"),
            "f1": Metric(real.f1, description="POPE F1"),
            "yes_ratio": Metric(real.yes_ratio, *ci(says.astype(float)), "share of predicted yes"),
            "blind_accuracy": Metric(blind.accuracy, *ci((blind_says == truth).astype(float)), "accuracy with a mean-colour image"),
            "blind_yes_ratio": Metric(blind.yes_ratio, *ci(blind_says.astype(float)), "predicted-yes share, blind"),
            "multimodal_gain": Metric(float(gain.mean()) if len(gain) else None, *ci(gain), "accuracy with image - blind accuracy"),
            "ece": Metric(expected_calibration_error(p_yes, truth), description="expected calibration error of P(yes), 10 bins"),
        }
        metrics.update(self._counterfactual_metrics(records))
        return HallucinationResult(
            probe=self.name, n_examples=len(records), n_failed=0, metrics=metrics,
            pope=real.to_dict(), blind_pope=blind.to_dict(), reliability=reliability_bins(p_yes, truth),
        )

    def _counterfactual_metrics(self, records: list[dict[str, Any]]) -> dict[str, Metric]:
        """The first present object removed (its answer must turn from yes to no): how often the answer
        follows the evidence, and how often a yes survives the object's removal."""
        pairs = [(r["p_yes"][0] > r["p_no"][0], r["counterfactual"]["p_yes"] > r["counterfactual"]["p_no"], r["example_id"])
                 for r in records if "counterfactual" in r]
        if not pairs:
            return {}
        before = np.array([b for b, _, _ in pairs])
        after = np.array([a for _, a, _ in pairs])
        changed = (before != after).astype(float)
        survived = after[before].astype(float)
        metrics = {"evidence_sensitivity": Metric(float(changed.mean()), *bootstrap_ci(changed, seed=self.seed),
                                                  "share of answers that change when the object is removed")}
        metrics["prior_persistence"] = Metric(float(survived.mean()) if len(survived) else None,
                                              *(bootstrap_ci(survived, seed=self.seed) if len(survived) else (None, None)),
                                              "share of yes answers that survive the object's removal")
        return metrics

    def _aggregate_pairs(self, records: list[dict[str, Any]]) -> ProbeResult:
        clusters, real, blind = [], [], []
        for r in records:
            for sp, sa, bsp, bsa in zip(r["sim_present"], r["sim_absent"], r["blind_sim_present"], r["blind_sim_absent"]):
                clusters.append(r["example_id"])
                real.append(float(sp > sa))
                blind.append(float(bsp > bsa))
        real_a, blind_a = np.array(real), np.array(blind)
        gain = real_a - blind_a

        def ci(values: np.ndarray) -> tuple[float, float]:
            return bootstrap_ci(values, clusters=clusters, seed=self.seed)

        metrics = {
            "pair_accuracy": Metric(float(real_a.mean()), *ci(real_a), "present caption scores above absent (chance 0.5)"),
            "blind_pair_accuracy": Metric(float(blind_a.mean()), *ci(blind_a), "the same on a mean-colour image"),
            "multimodal_gain": Metric(float(gain.mean()), *ci(gain), "pair accuracy with image - blind"),
        }
        return HallucinationResult(probe=self.name, n_examples=len(records), n_failed=0, metrics=metrics, question_template=CAPTION)
