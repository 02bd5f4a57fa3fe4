"""Aggregating the hallucination probe's per-scene records into POPE, counterfactual, blind and CHAIR results.

Every CI is a percentile bootstrap that resamples scenes (clusters), since the questions about one image
are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from mmdiag.metrics.calibration import (
    binary_calibration_error,
    expected_calibration_error,
    reliability_bins,
)
from mmdiag.metrics.chair import ChairScores, SynonymTable, chair
from mmdiag.metrics.coco_chair import REFERENCE, ChairRules2018, compute_chair
from mmdiag.metrics.discrimination import auroc_ci
from mmdiag.metrics.pope import NO, RULES, YES, pope_scores, score_answers
from mmdiag.metrics.stats import bootstrap_ci, mcnemar_clustered
from mmdiag.probes.base import Metric, ProbeResult
from mmdiag.probes.hallucination.plan import BLINDS, EDITS
from mmdiag.probes.hallucination.result import CAPTION, HallucinationResult


def _says(p_yes: Sequence[float], p_no: Sequence[float]) -> np.ndarray:
    return np.asarray(p_yes, dtype=float) > np.asarray(p_no, dtype=float)


def _ci(values: np.ndarray, clusters: Sequence[str], seed: int) -> tuple[float | None, float | None]:
    if len(values) == 0:
        return None, None
    return bootstrap_ci(values, clusters=clusters, seed=seed)


def _metric(values: np.ndarray, clusters: Sequence[str], seed: int, description: str) -> Metric:
    if len(values) == 0:
        return Metric(None, description=description)
    return Metric(float(np.mean(values)), *_ci(values, clusters, seed), description)


def _edit_metric(stats: dict[str, Any], key: str, edit: str, description: str) -> Metric:
    """A counterfactual metric (value and CI) of one edit, with why it is undefined where it is."""
    value, low, high = stats.get(key) or [None, None, None]
    reason = None
    if value is None:
        reason = (
            f"no {edit} counterfactual pairs in this run"
            if not stats.get("n")
            else "no yes answer before the edit: nothing to persist"
            if key == "prior_persistence"
            else f"no {edit} pair could be scored"
        )
    return Metric(value, low, high, description, undefined=reason)


def _pope_metric(scores: dict[str, Any], name: str, description: str) -> Metric:
    """A POPE score of one split, with POPE's own reason where it is undefined (e.g. no yes answers: no precision)."""
    value = scores.get(name)
    reason = (
        None
        if value is not None
        else (
            (scores.get("undefined") or {}).get(name)
            or ("no questions of this split" if not scores else "undefined on this split")
        )
    )
    return Metric(value, description=description, undefined=reason)


class Question(NamedTuple):
    """One POPE question of one scene, with the model's first-token probabilities."""

    scene: str
    text: str
    object: str
    label: str
    splits: list[str]
    p_yes: float
    p_no: float

    @property
    def says_yes(self) -> bool:
        return self.p_yes > self.p_no


def generative_result(
    name: str, records: list[dict[str, Any]], seed: int, splits: Sequence[str], vocabulary: Sequence[str] | None = None
) -> ProbeResult:
    """The generative model's result; CHAIR reads captions for the names of ``vocabulary`` (the data source's
    object names; by default every object the records asked about)."""

    rows = [
        Question(r["example_id"], q, obj, lab, sp, py, pn)
        for r in records
        for q, obj, lab, sp, py, pn in zip(
            r["questions"], r["objects"], r["labels"], r["splits"], r["p_yes"], r["p_no"]
        )
    ]
    result = HallucinationResult(probe=name, n_examples=len(records), n_failed=0, metrics={})
    metrics = result.metrics

    # POPE per split, from logits (and from free text under every rule)
    for split in splits:
        split_rows = [row for row in rows if split in row.splits]
        labels = [row.label for row in split_rows]
        decisions = [YES if row.says_yes else NO for row in split_rows]
        result.pope[split] = pope_scores(decisions, labels).to_dict()
        answers = _answers(records, split)
        if answers is not None:
            result.pope_rules[split] = {
                rule: score_answers([a for a, _ in answers], [lab for _, lab in answers], rule).to_dict()
                for rule in RULES
            }
    random_rows = [row for row in rows if "random" in row.splits]
    clusters = [row.scene for row in random_rows]
    truth = np.array([row.label == YES for row in random_rows])
    says = np.array([row.says_yes for row in random_rows])
    p_yes = np.array([row.p_yes / (row.p_yes + row.p_no) if row.p_yes + row.p_no > 0 else 0.5 for row in random_rows])
    pope = result.pope.get("random", {})
    metrics["accuracy"] = _metric((says == truth).astype(float), clusters, seed, "POPE accuracy, random split (logits)")
    metrics["precision"] = _pope_metric(pope, "precision", "POPE precision, random split (yes = positive)")
    metrics["recall"] = _pope_metric(pope, "recall", "POPE recall, random split")
    metrics["f1"] = _pope_metric(pope, "f1", "POPE F1, random split")
    metrics["yes_ratio"] = _metric(says.astype(float), clusters, seed, "share of predicted yes, random split")
    value, low, high = auroc_ci(p_yes, truth, clusters, seed)
    metrics["auroc"] = Metric(
        value,
        low,
        high,
        "AUROC of P(yes) between present and absent objects, random split (ties one half); CI: bootstrap over scenes",
        null=0.5,
        n=len(random_rows),
        undefined=None if value is not None else "the random split needs both present and absent objects",
    )
    metrics["f1_adversarial"] = _pope_metric(result.pope.get("adversarial", {}), "f1", "POPE F1, adversarial split")
    for split in ("popular", "adversarial"):
        split_rows = [row for row in rows if split in row.splits]
        right = np.array([row.says_yes == (row.label == YES) for row in split_rows], dtype=float)
        metrics[f"accuracy_{split}"] = _metric(
            right, [row.scene for row in split_rows], seed, f"POPE accuracy, {split} split (logits)"
        )
    absent = [row for row in rows if row.label == NO]  # each absent-object question once, whatever its splits
    metrics["false_yes_rate"] = _metric(
        np.array([float(row.says_yes) for row in absent]),
        [row.scene for row in absent],
        seed,
        "share of 'yes' to absent objects, every split (each question once)",
    )
    metrics["adversarial_gap"] = _adversarial_gap(rows, seed)
    metrics["ece"] = Metric(
        expected_calibration_error(p_yes, truth) if len(truth) else None,
        description="top-label expected calibration error (Guo et al. 2017) of the yes/no decision: "
        "confidence max(P(yes), 1 - P(yes)) in 10 bins over [0.5, 1], random split",
        n=len(truth),
        undefined=None if len(truth) else "no random-split questions",
    )
    metrics["calibration_error_p_yes"] = Metric(
        binary_calibration_error(p_yes, truth) if len(truth) else None,
        description="binary calibration error of P(yes): |share of yes - mean P(yes)| in 10 bins over [0, 1], weighted "
        "by bin size (the bins of the reliability diagram), random split",
        n=len(truth),
        undefined=None if len(truth) else "no random-split questions",
    )
    result.reliability = reliability_bins(p_yes, truth) if len(truth) else []

    # blind baselines on the random split's questions
    real_correct = (says == truth).astype(float)
    for kind in BLINDS:
        blind_says = np.array(
            [
                b
                for r in records
                for b, sp in zip(_says(r["blind"][kind]["p_yes"], r["blind"][kind]["p_no"]), r["splits"])
                if "random" in sp
            ],
            dtype=bool,
        )
        result.blind_pope[kind] = pope_scores(
            [YES if s else NO for s in blind_says], [YES if t else NO for t in truth]
        ).to_dict()
        gain = real_correct - (blind_says == truth).astype(float)
        result.blind_pope[kind]["multimodal_gain"] = float(gain.mean()) if len(gain) else None
        if kind == "mean_colour":
            metrics["blind_accuracy"] = _metric(
                (blind_says == truth).astype(float), clusters, seed, "accuracy with a mean-colour image"
            )
            metrics["blind_yes_ratio"] = _metric(
                blind_says.astype(float), clusters, seed, "predicted-yes share, mean-colour image"
            )
            metrics["multimodal_gain"] = _metric(
                gain, clusters, seed, "accuracy with image - accuracy on its mean colour"
            )
        if kind == "noise":
            metrics["multimodal_gain_noise"] = _metric(
                gain, clusters, seed, "accuracy with image - accuracy on Gaussian noise"
            )

    # counterfactual pairs
    for edit in EDITS:
        pairs = [(r["example_id"], cf) for r in records for cf in r.get("counterfactuals", []) if cf["edit"] == edit]
        if pairs:
            result.counterfactuals[edit] = _counterfactual_stats(pairs, seed)
    remove, mirror = result.counterfactuals.get("remove", {}), result.counterfactuals.get("mirror", {})
    metrics["evidence_sensitivity"] = _edit_metric(
        remove, "evidence_sensitivity", "remove", "share of answers that change when the asked object is removed"
    )
    metrics["prior_persistence"] = _edit_metric(
        remove, "prior_persistence", "remove", "share of yes answers that survive the object's removal"
    )
    cooccurring = result.counterfactuals.get("remove_cooccurring", {})
    metrics["prior_persistence_cooccurring"] = _edit_metric(
        cooccurring,
        "prior_persistence",
        "remove_cooccurring",
        "share of yes answers that survive the removal of the object that co-occurs most with the rest of the scene",
    )
    metrics["mirror_sensitivity"] = _edit_metric(
        mirror, "evidence_sensitivity", "mirror", "share of left/right answers that flip when the scene is mirrored"
    )
    metrics["mirror_accuracy"] = _mirror_accuracy(records, seed)
    for axis in ("horizontal", "vertical"):
        metrics[f"relation_accuracy_{axis}"] = _relation_accuracy(records, axis, seed)

    # CHAIR
    captioned = [r for r in records if "caption" in r]
    if captioned:
        if all(r.get("caption_rules") == "coco-2018" for r in captioned):
            scores = _chair_2018(captioned)
            result.chair = {k: v for k, v in scores.to_dict().items() if k != "per_caption"} | {"rules": REFERENCE}
        else:
            scores = chair(
                [r["caption"] for r in captioned],
                [r["caption_truth"] for r in captioned],
                SynonymTable.of_names(vocabulary or sorted({o for r in records for o in r["objects"]})),
            )
            result.chair = {k: v for k, v in scores.to_dict().items() if k != "per_caption"}
        metrics["chair_i"] = Metric(
            scores.chair_i,
            description="hallucinated object mentions / all mentions in captions",
            undefined=None
            if scores.chair_i is not None
            else f"the {len(captioned)} captions mention no object of the vocabulary",
        )
        metrics["chair_s"] = Metric(
            scores.chair_s,
            description="captions with a hallucinated object / all captions",
            undefined=None if scores.chair_s is not None else "no captions",
        )
        metrics["caption_recall"] = Metric(
            scores.recall,
            description="ground-truth objects mentioned / all ground-truth objects",
            undefined=None if scores.recall is not None else "no ground-truth objects",
        )
    else:
        why = next((r["caption_skipped"] for r in records if r.get("caption_skipped")), "no captions were written")
        for key, text in (
            ("chair_i", "hallucinated object mentions / all mentions in captions"),
            ("chair_s", "captions with a hallucinated object / all captions"),
            ("caption_recall", "ground-truth objects mentioned / all ground-truth objects"),
        ):
            metrics[key] = Metric(None, description=text, undefined=f"not measured: {why}")
    return result


def _mirror_accuracy(records: list[dict[str, Any]], seed: int) -> Metric:
    """Right answers to the left/right question on the scene and on its mirror (both counted; clustered by scene):
    a model that mirrors every relation, a yes-sayer and a no-sayer score 0, 0.5 and 0.5 here, however much they
    react to the mirror."""
    right, clusters = [], []
    for r in records:
        for cf in r.get("counterfactuals", []):
            if cf["edit"] == "mirror":
                right += [
                    float((cf["p_yes_before"] > cf["p_no_before"]) == (cf["before"] == YES)),
                    float((cf["p_yes_after"] > cf["p_no_after"]) == (cf["after"] == YES)),
                ]
                clusters += [r["example_id"]] * 2
    metric = _metric(np.array(right), clusters, seed, "accuracy of left/right answers on the scene and its mirror")
    if not right:
        metric.undefined = "no scene with a left/right relation to mirror"
    return metric


def _relation_accuracy(records: list[dict[str, Any]], axis: str, seed: int) -> Metric:
    """Accuracy on the balanced relation questions of one axis (each relation and its converse; clustered by
    scene)."""
    right, clusters = [], []
    for r in records:
        rel = r.get("relations")
        if not rel:
            continue
        for label, ax, py, pn in zip(rel["labels"], rel["axes"], rel["p_yes"], rel["p_no"]):
            if ax == axis:
                right.append(float((py > pn) == (label == YES)))
                clusters.append(r["example_id"])
    words = "left/right" if axis == "horizontal" else "above/below"
    metric = _metric(
        np.array(right),
        clusters,
        seed,
        f"accuracy on {words} statements and their converses (balanced yes/no, chance 0.5)",
    )
    if not right:
        metric.undefined = f"no pair of objects with an unambiguous {words} relation"
    return metric


def _chair_2018(captioned: list[dict[str, Any]]) -> ChairScores:
    """CHAIR under the original 2018 rules and synonyms (COCO photos), as :class:`ChairScores`."""
    rules = ChairRules2018()
    rows = [{"image_id": k, "caption": r["caption"]} for k, r in enumerate(captioned)]
    found = compute_chair(rows, {k: set(r["caption_truth"]) for k, r in enumerate(captioned)}, rules)
    return ChairScores(
        found.CHAIRi, found.CHAIRs, found.recall, found.mentions, found.hallucinated_mentions, found.n_captions
    )


def _answers(records: list[dict[str, Any]], split: str) -> list[tuple[str, str]] | None:
    if not records or "answers" not in records[0]:
        return None
    return [(a, lab) for r in records for a, lab, sp in zip(r["answers"], r["labels"], r["splits"]) if split in sp]


def _adversarial_gap(rows: list[Question], seed: int) -> Metric:
    """False-yes rate on adversarial (co-occurring) absent objects - on random absent objects, per scene."""
    per_scene: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if row.label != NO:
            continue
        for split in ("adversarial", "random"):
            if split in row.splits:
                per_scene.setdefault(row.scene, {"adversarial": [], "random": []})[split].append(float(row.says_yes))
    diffs = np.array(
        [
            np.mean(v["adversarial"]) - np.mean(v["random"])
            for v in per_scene.values()
            if v["adversarial"] and v["random"]
        ]
    )
    if len(diffs) == 0:
        return Metric(None, description="false-yes rate, adversarial - random absent objects")
    return Metric(
        float(diffs.mean()),
        *bootstrap_ci(diffs, seed=seed),
        "false-yes rate on co-occurring absent objects - on random absent objects (per scene)",
    )


def _counterfactual_stats(pairs: list[tuple[str, dict[str, Any]]], seed: int) -> dict[str, Any]:
    clusters = [scene for scene, _ in pairs]
    before = np.array([cf["p_yes_before"] > cf["p_no_before"] for _, cf in pairs])
    after = np.array([cf["p_yes_after"] > cf["p_no_after"] for _, cf in pairs])
    right_before = before == np.array([cf["before"] == YES for _, cf in pairs])
    right_after = after == np.array([cf["after"] == YES for _, cf in pairs])
    changed = (before != after).astype(float)
    survived = after[before].astype(float)
    test = mcnemar_clustered(right_before, right_after, clusters, seed)

    def triple(values: np.ndarray, groups: Sequence[str]) -> list[float | None]:
        if len(values) == 0:
            return [None, None, None]
        return [float(values.mean()), *_ci(values, groups, seed)]

    return {
        "n": len(pairs),
        "evidence_sensitivity": triple(changed, clusters),
        "prior_persistence": triple(survived, [c for c, b in zip(clusters, before) if b]),
        "accuracy_before": triple(right_before.astype(float), clusters),
        "accuracy_after": triple(right_after.astype(float), clusters),
        "mcnemar": test,
    }


def dual_encoder_result(name: str, records: list[dict[str, Any]], seed: int) -> ProbeResult:

    clusters, real, blind = [], [], []
    for r in records:
        for sp, sa, bsp, bsa in zip(r["sim_present"], r["sim_absent"], r["blind_sim_present"], r["blind_sim_absent"]):
            clusters.append(r["example_id"])
            real.append(float(sp > sa))
            blind.append(float(bsp > bsa))
    real_a, blind_a = np.array(real), np.array(blind)
    swaps = [(r["example_id"], r["swap"]) for r in records if "swap" in r]
    # before the swap the old name must win, after it the new one: the preference follows the evidence
    flipped = np.array([float((s["before"][0] > s["before"][1]) != (s["after"][0] > s["after"][1])) for _, s in swaps])
    metrics = {
        "pair_accuracy": _metric(real_a, clusters, seed, "present caption scores above absent (chance 0.5)"),
        "blind_pair_accuracy": _metric(blind_a, clusters, seed, "the same on a mean-colour image"),
        "multimodal_gain": _metric(real_a - blind_a, clusters, seed, "pair accuracy with image - blind"),
        "evidence_sensitivity": _metric(
            flipped,
            [c for c, _ in swaps],
            seed,
            "share of old-vs-new caption preferences that flip when the object's colour is swapped",
        ),
    }
    counterfactuals = {}
    if swaps:
        right_before = np.array([s["before"][0] > s["before"][1] for _, s in swaps])
        right_after = np.array([s["after"][1] > s["after"][0] for _, s in swaps])
        groups = [c for c, _ in swaps]
        m = metrics["evidence_sensitivity"]
        counterfactuals["swap"] = {
            "n": len(swaps),
            "evidence_sensitivity": [m.value, m.ci_low, m.ci_high],
            "prior_persistence": None,
            "accuracy_before": [float(right_before.mean()), *_ci(right_before.astype(float), groups, seed)],
            "accuracy_after": [float(right_after.mean()), *_ci(right_after.astype(float), groups, seed)],
            "mcnemar": mcnemar_clustered(right_before, right_after, groups, seed),
        }
    return HallucinationResult(
        probe=name,
        n_examples=len(records),
        n_failed=0,
        metrics=metrics,
        question_template=CAPTION,
        counterfactuals=counterfactuals,
    )
