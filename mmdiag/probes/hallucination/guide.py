"""How to read the hallucination probe's headline metrics (see :mod:`mmdiag.probes.guidance`)."""

from __future__ import annotations

from mmdiag.probes.guidance import MetricGuide

_BLIND = "an image-blind model"

GUIDES: dict[str, MetricGuide] = {
    "accuracy": MetricGuide("POPE accuracy on the random split: is the asked object in the image?", reference=0.5,
                            reference_label="chance (balanced questions)"),
    "precision": MetricGuide("of the objects called present, the share that are", reference=0.5,
                             reference_label="chance"),
    "recall": MetricGuide("of the present objects, the share called present", reference=0.5, reference_label="chance"),
    "f1": MetricGuide("POPE F1 on the random split (yes = positive)", reference=0.5, reference_label="chance"),
    "yes_ratio": MetricGuide("share of yes answers; far above 0.5 is a yes-bias (questions are balanced)",
                             better="near_reference", reference=0.5, reference_label="balanced questions", reference_is="ideal"),
    "f1_adversarial": MetricGuide("POPE F1 on the adversarial split (absent objects that co-occur with the scene)",
                                  reference=0.5, reference_label="chance"),
    "adversarial_gap": MetricGuide(
        "false-yes rate on co-occurring absent objects minus on random absent objects; above 0 is a "
        "co-occurrence prior", better="lower", reference=0.0, reference_label="no prior", reference_is="ideal"),
    "accuracy_popular": MetricGuide("POPE accuracy on the popular split (absent objects among the most frequent)",
                                    reference=0.5, reference_label="chance"),
    "accuracy_adversarial": MetricGuide(
        "POPE accuracy on the adversarial split (absent objects that co-occur with the scene's): where a "
        "co-occurrence prior shows", reference=0.5, reference_label="chance"),
    "false_yes_rate": MetricGuide("share of 'yes' to objects that are absent (every split); high is a yes-bias or a "
                                  "prior", better="lower", reference=0.0, reference_label="no false yes",
                                  reference_is="ideal"),
    "mirror_accuracy": MetricGuide(
        "left/right answers right on the scene and on its mirror: correct layout, not only a reaction to the mirror "
        "(a model that mirrors every relation scores 0)", reference=0.5, reference_label="chance (a yes-sayer)"),
    "relation_accuracy_horizontal": MetricGuide(
        "accuracy on left/right statements and their converses (balanced yes/no)", reference=0.5,
        reference_label="chance"),
    "relation_accuracy_vertical": MetricGuide(
        "accuracy on above/below statements and their converses (balanced yes/no)", reference=0.5,
        reference_label="chance"),
    "blind_accuracy": MetricGuide("accuracy when the image is its mean colour: what the language prior alone gets",
                                  better="near_reference", reference=0.5, reference_label="chance", reference_is="ideal"),
    "blind_yes_ratio": MetricGuide("share of yes with the mean-colour image", better="neither"),
    "multimodal_gain": MetricGuide(
        "accuracy with the image minus accuracy on its mean colour: how much the image helps; near 0 the model does "
        "not use the image", reference=0.0, reference_label=_BLIND),
    "multimodal_gain_noise": MetricGuide("accuracy with the image minus accuracy on Gaussian noise", reference=0.0,
                                         reference_label=_BLIND),
    "ece": MetricGuide("expected calibration error of the yes/no confidence (10 bins over [0.5, 1])",
                       better="lower", reference=0.0, reference_label="perfect calibration", reference_is="ideal"),
    "calibration_error_p_yes": MetricGuide("calibration error of P(yes) in the reliability diagram's bins over [0, 1]",
                                           better="lower", reference=0.0, reference_label="perfect calibration", reference_is="ideal"),
    "evidence_sensitivity": MetricGuide(
        "share of answers that change when the asked object is erased; low means answers come from the prior",
        reference=0.0, reference_label=_BLIND),
    "prior_persistence": MetricGuide("share of yes answers that survive erasing the object", better="lower",
                                     reference=1.0, reference_label=_BLIND),
    "prior_persistence_cooccurring": MetricGuide(
        "share of yes answers that survive erasing the object that usually comes with the others: a learned "
        "co-occurrence prior", better="lower", reference=1.0, reference_label=_BLIND),
    "mirror_sensitivity": MetricGuide("share of left/right answers that flip when the scene is mirrored",
                                      reference=0.0, reference_label=_BLIND),
    "chair_i": MetricGuide("share of object mentions in captions that are not in the image (CHAIR_i)",
                           better="lower", reference=0.0, reference_label="no hallucination", reference_is="ideal"),
    "chair_s": MetricGuide("share of captions that name an object not in the image (CHAIR_s)", better="lower",
                           reference=0.0, reference_label="no hallucination", reference_is="ideal"),
    "caption_recall": MetricGuide("share of the image's objects that its caption names", reference=None),
    "pair_accuracy": MetricGuide("the right caption scores above a wrong one", reference=0.5,
                                 reference_label="chance"),
    "blind_pair_accuracy": MetricGuide("pair accuracy with a mean-colour image", better="near_reference",
                                       reference=0.5, reference_label="chance", reference_is="ideal"),
}
