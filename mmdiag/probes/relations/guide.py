"""How to read the relations probe's headline metrics (see :mod:`mmdiag.probes.guidance`)."""

from __future__ import annotations

from mmdiag.probes.guidance import MetricGuide

GUIDES: dict[str, MetricGuide] = {
    "relation_accuracy": MetricGuide(
        "share of relation statements judged right: the true caption chosen among its alternatives, or a single "
        "caption judged true or false correctly", reference=None, reference_label="chance (1 / options; 0.5 for a judgement)"),
    "blind_relation_accuracy": MetricGuide(
        "the same on the image's mean colour: what the caption text alone gets", better="near_reference",
        reference=None, reference_label="chance", reference_is="ideal"),
    "relation_multimodal_gain": MetricGuide(
        "accuracy with the image minus accuracy on its mean colour: how much the image decides the relation; near 0 "
        "the model reads relations from the words", reference=0.0, reference_label="an image-blind model"),
}
