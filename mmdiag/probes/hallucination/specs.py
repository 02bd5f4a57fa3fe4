"""The hallucination probe's metrics, each defined once (see :mod:`mmdiag.probes.metric_spec`)."""

from __future__ import annotations

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE
from mmdiag.probes.metric_spec import MetricSpec

_BLIND = "an image-blind model"
_GEN, _DUAL, _BOTH = (GENERATIVE,), (DUAL_ENCODER,), (GENERATIVE, DUAL_ENCODER)
SCENE_BOOTSTRAP = "percentile bootstrap over scenes (questions of one image resampled together)"
NO_CI_POPE = ""  # POPE's precision/recall/F1 are reported as POPE reports them, without a CI
_NOT_A_SHARE = "a ratio of two shares (not a sum over examples); pair accuracy instead"


def _logit(text: str) -> str:
    return f"{text}; decisions from first-token logits: yes iff P(yes) > P(no)"


METRIC_SPECS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(
        "POPE accuracy on the random split: is the asked object in the image?",
        reference=0.5,
        reference_label="chance (balanced questions)",
        kinds=_GEN,
        computed=_logit("right answers / random-split questions"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, questions)",
        failure="presence answers are often wrong",
    ),
    "auroc": MetricSpec(
        "threshold-free discrimination: how often a present object's P(yes) beats an absent one's; a change that "
        "only shifts the yes-ratio leaves it where it was",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed="AUROC of P(yes) / (P(yes) + P(no)) between present and absent objects, random split (ties one "
        "half; the Mann-Whitney statistic, equal to scikit-learn's roc_auc_score)",
        ci=SCENE_BOOTSTRAP,
        unpaired="a rank statistic over all questions: mmdiag compare decomposes a mitigation's change in it",
        needs_scores=True,
    ),
    "precision": MetricSpec(
        "of the objects called present, the share that are",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("true yes / all yes, random split (POPE's own scoring)"),
        ci=NO_CI_POPE,
        unpaired="a share over the model's own yes answers, which differ between runs",
    ),
    "recall": MetricSpec(
        "of the present objects, the share called present",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("true yes / present objects, random split"),
        ci=NO_CI_POPE,
        unpaired="covered by accuracy and false_yes_rate, which pair",
    ),
    "f1": MetricSpec(
        "POPE F1 on the random split (yes = positive)",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("harmonic mean of precision and recall, random split"),
        ci=NO_CI_POPE,
        unpaired="not a sum over examples; accuracy pairs",
        failure="presence answers are often wrong",
    ),
    "yes_ratio": MetricSpec(
        "share of yes answers; far above 0.5 is a yes-bias (questions are balanced)",
        better="near_reference",
        reference=0.5,
        reference_label="balanced questions",
        reference_is="ideal",
        kinds=_GEN,
        computed=_logit("yes answers / random-split questions"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (yes answers, questions)",
        failure="the model says 'yes' far more (or less) often than the balanced questions call for: a yes-bias, "
        "not evidence",
    ),
    "f1_adversarial": MetricSpec(
        "POPE F1 on the adversarial split (absent objects that co-occur with the scene)",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("POPE F1 on the adversarial split"),
        ci=NO_CI_POPE,
        unpaired="not a sum over examples; accuracy_adversarial pairs",
        failure="absent objects that usually co-occur with the scene are often called present",
    ),
    "adversarial_gap": MetricSpec(
        "false-yes rate on co-occurring absent objects minus on random absent objects; above 0 is a co-occurrence "
        "prior",
        better="lower",
        reference=0.0,
        reference_label="no prior",
        reference_is="ideal",
        kinds=_GEN,
        computed="per scene: false-yes rate on adversarial absent objects - on random absent objects; mean over "
        "scenes with both",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="scene",
        failure="the model says 'yes' to absent objects that usually co-occur with the scene more often than to "
        "other absent objects: a co-occurrence prior",
    ),
    "accuracy_popular": MetricSpec(
        "POPE accuracy on the popular split (absent objects among the most frequent)",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("right answers / popular-split questions"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, questions)",
        failure="frequent absent objects are often called present",
    ),
    "accuracy_adversarial": MetricSpec(
        "POPE accuracy on the adversarial split (absent objects that co-occur with the scene's): where a "
        "co-occurrence prior shows",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("right answers / adversarial-split questions"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, questions)",
        failure="absent objects that usually co-occur with the scene's objects are often called present: the "
        "language prior answers where the image should",
    ),
    "false_yes_rate": MetricSpec(
        "share of 'yes' to objects that are absent (every split); high is a yes-bias or a prior",
        better="lower",
        reference=0.0,
        reference_label="no false yes",
        reference_is="ideal",
        kinds=_GEN,
        computed=_logit("yes answers / absent-object questions, every split, each question once"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (false yes, absent-object questions)",
        failure="the model calls absent objects present: a yes-bias or a prior",
    ),
    "mirror_accuracy": MetricSpec(
        "left/right answers right on the scene and on its mirror: correct layout, not only a reaction to the mirror "
        "(a model that mirrors every relation scores 0)",
        reference=0.5,
        reference_label="chance (a yes-sayer)",
        kinds=_GEN,
        computed=_logit("right left/right answers on the scene and on its mirror / both counted"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, answers)",
        failure="left/right answers are wrong on the scene or on its mirror: the model reads the layout wrongly (it "
        "may still react to the mirror)",
    ),
    "relation_accuracy_horizontal": MetricSpec(
        "accuracy on left/right statements and their converses (balanced yes/no)",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("right answers / left-right statements and converses"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, statements)",
        failure="left/right statements are not told from their converses: the layout does not reach the answers "
        "correctly",
    ),
    "relation_accuracy_vertical": MetricSpec(
        "accuracy on above/below statements and their converses (balanced yes/no)",
        reference=0.5,
        reference_label="chance",
        kinds=_GEN,
        computed=_logit("right answers / above-below statements and converses"),
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right answers, statements)",
        failure="above/below statements are not told from their converses",
    ),
    "blind_accuracy": MetricSpec(
        "accuracy when the image is its mean colour: what the language prior alone gets",
        better="near_reference",
        reference=0.5,
        reference_label="chance",
        reference_is="ideal",
        kinds=_GEN,
        computed=_logit("right answers on the mean-colour image / random-split questions"),
        ci=SCENE_BOOTSTRAP,
        unpaired="multimodal_gain pairs the same answers",
    ),
    "blind_yes_ratio": MetricSpec(
        "share of yes with the mean-colour image",
        better="neither",
        kinds=_GEN,
        computed=_logit("yes answers on the mean-colour image / random-split questions"),
        ci=SCENE_BOOTSTRAP,
        unpaired="descriptive",
    ),
    "multimodal_gain": MetricSpec(
        "accuracy with the image minus accuracy on its mean colour: how much the image helps; near 0 the model does "
        "not use the image",
        reference=0.0,
        reference_label=_BLIND,
        kinds=_BOTH,
        computed="per question: right with the image - right on its mean colour (random split; dual encoders: "
        "present caption above absent, same pairs); mean",
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (sum of per-question gains, questions)",
        failure="answers are hardly more accurate with the image than with a blank image of its mean colour: the "
        "model is not using the image",
    ),
    "multimodal_gain_noise": MetricSpec(
        "accuracy with the image minus accuracy on Gaussian noise",
        reference=0.0,
        reference_label=_BLIND,
        kinds=_GEN,
        computed="per question: right with the image - right on Gaussian noise (random split); mean",
        ci=SCENE_BOOTSTRAP,
        unpaired="multimodal_gain (the mean-colour baseline) is the paired form",
        failure="answers are hardly more accurate with the image than with noise: the model is not using the image",
    ),
    "ece": MetricSpec(
        "expected calibration error of the yes/no confidence (10 bins over [0.5, 1])",
        better="lower",
        reference=0.0,
        reference_label="perfect calibration",
        reference_is="ideal",
        kinds=_GEN,
        computed="top-label ECE (Guo et al. 2017): confidence max(P(yes), 1 - P(yes)) in 10 bins over [0.5, 1], "
        "random split",
        ci="",
        unpaired="a binned statistic over all questions, not a sum over examples",
        needs_scores=True,
    ),
    "calibration_error_p_yes": MetricSpec(
        "calibration error of P(yes) in the reliability diagram's bins over [0, 1]",
        better="lower",
        reference=0.0,
        reference_label="perfect calibration",
        reference_is="ideal",
        kinds=_GEN,
        computed="|share of yes - mean P(yes)| in 10 bins over [0, 1], weighted by bin size, random split",
        ci="",
        unpaired="a binned statistic over all questions, not a sum over examples",
        needs_scores=True,
    ),
    "evidence_sensitivity": MetricSpec(
        "share of answers that change when the asked object is erased; low means answers come from the prior",
        reference=0.0,
        reference_label=_BLIND,
        kinds=_BOTH,
        computed="answers that change between the scene and the scene with the asked object erased / pairs (dual "
        "encoders: old-vs-new caption preferences that flip when the object's colour is swapped)",
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (changed answers, pairs)",
        failure="answers do not change when the asked object is erased from the image: the model answers from its "
        "prior, not from the evidence",
    ),
    "prior_persistence": MetricSpec(
        "share of yes answers that survive erasing the object",
        better="lower",
        reference=1.0,
        reference_label=_BLIND,
        kinds=_GEN,
        computed="yes answers after erasing the object / yes answers before",
        ci=SCENE_BOOTSTRAP,
        unpaired="its denominator is the model's own yes answers, which differ between runs",
        failure="'yes' survives erasing the object: the model sees what it expects",
    ),
    "prior_persistence_cooccurring": MetricSpec(
        "share of yes answers that survive erasing the object that usually comes with the others: a learned "
        "co-occurrence prior",
        better="lower",
        reference=1.0,
        reference_label=_BLIND,
        kinds=_GEN,
        computed="yes answers after erasing the object that co-occurs most with the rest of the scene / yes answers "
        "before",
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (surviving yes, yes before)",
        failure="'yes' survives erasing an object that usually comes with the others: a learned co-occurrence prior "
        "overrides the image",
    ),
    "mirror_sensitivity": MetricSpec(
        "share of left/right answers that flip when the scene is mirrored",
        reference=0.0,
        reference_label=_BLIND,
        kinds=_GEN,
        computed="left/right answers that change between the scene and its mirror / pairs",
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (flipped answers, pairs)",
        failure="left/right answers do not flip when the scene is mirrored: the image's layout does not reach the "
        "answers",
    ),
    "chair_i": MetricSpec(
        "share of object mentions in captions that are not in the image (CHAIR_i)",
        better="lower",
        reference=0.0,
        reference_label="no hallucination",
        reference_is="ideal",
        kinds=_GEN,
        computed="hallucinated object mentions / all object mentions in greedy captions (Rohrbach et al. 2018; "
        "COCO photos: the original's rules and synonyms)",
        ci="",
        unpaired="a ratio over mentions, which differ between runs' captions",
        failure="captions name objects that are not in the image",
    ),
    "chair_s": MetricSpec(
        "share of captions that name an object not in the image (CHAIR_s)",
        better="lower",
        reference=0.0,
        reference_label="no hallucination",
        reference_is="ideal",
        kinds=_GEN,
        computed="captions with a hallucinated object / all captions",
        ci="",
        unpaired="not stored per example",
        failure="many captions name an object that is not in the image",
    ),
    "caption_recall": MetricSpec(
        "share of the image's objects that its caption names",
        reference=None,
        kinds=_GEN,
        computed="ground-truth objects mentioned / all ground-truth objects",
        ci="",
        unpaired="descriptive",
    ),
    "pair_accuracy": MetricSpec(
        "the right caption scores above a wrong one",
        reference=0.5,
        reference_label="chance",
        kinds=_DUAL,
        computed="present-object caption scores above an absent-object caption / pairs",
        ci=SCENE_BOOTSTRAP,
        paired="ratio",
        paired_unit="scene (right pairs, pairs)",
        failure="the right caption does not score above a wrong one: image and text are not aligned",
    ),
    "blind_pair_accuracy": MetricSpec(
        "pair accuracy with a mean-colour image",
        better="near_reference",
        reference=0.5,
        reference_label="chance",
        reference_is="ideal",
        kinds=_DUAL,
        computed="the same pairs on the image's mean colour",
        ci=SCENE_BOOTSTRAP,
        unpaired="multimodal_gain pairs the same answers",
    ),
}
