"""The relations probe's metrics, each defined once (see :mod:`mmdiag.probes.metric_spec`)."""

from __future__ import annotations

from mmdiag.probes.metric_spec import MetricSpec

METRIC_SPECS: dict[str, MetricSpec] = {
    "relation_accuracy": MetricSpec(
        "share of relation statements judged right: the true caption chosen among its alternatives, or a single "
        "caption judged true or false correctly",
        reference=None,
        reference_label="chance (1 / options; 0.5 for a judgement)",
        computed="right choices (or judgements) / statements; decisions from the model's scores of each caption",
        ci="percentile bootstrap over images",
        paired="mean",
        paired_unit="statement",
        failure="relation statements are judged no better than chance: the image's layout does not reach the answers",
    ),
    "blind_relation_accuracy": MetricSpec(
        "the same on the image's mean colour: what the caption text alone gets",
        better="near_reference",
        reference=None,
        reference_label="chance",
        reference_is="ideal",
        computed="the same on the image's mean colour",
        ci="percentile bootstrap over images",
        unpaired="relation_multimodal_gain pairs the same answers",
    ),
    "relation_multimodal_gain": MetricSpec(
        "accuracy with the image minus accuracy on its mean colour: how much the image decides the relation; near 0 "
        "the model reads relations from the words",
        reference=0.0,
        reference_label="an image-blind model",
        computed="per statement: right with the image - right on its mean colour; mean",
        ci="percentile bootstrap over images",
        paired="mean",
        paired_unit="statement",
        failure="relation answers are no better with the image than without it: the model reads relations from the "
        "words",
    ),
}
