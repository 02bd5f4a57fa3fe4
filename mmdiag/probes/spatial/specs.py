"""The spatial probe's metrics, each defined once (see :mod:`mmdiag.probes.metric_spec`)."""

from __future__ import annotations

from typing import Any

from mmdiag.adapters.base import DUAL_ENCODER
from mmdiag.probes.metric_spec import MetricSpec

RETENTION_RANGE = (-0.5, 2.0)  # outside it the ratio's denominator (pre - chance) is too small to trust


def _retention_unstable(metric: dict[str, Any]) -> str | None:
    value = metric.get("value")
    if value is not None and not RETENTION_RANGE[0] <= value <= RETENTION_RANGE[1]:
        return (
            f"a retention of {value:.3g} lies outside [{RETENTION_RANGE[0]:g}, {RETENTION_RANGE[1]:g}]: the "
            "vision encoder's score is barely above chance, so the ratio divides by almost nothing"
        )
    return None


def _selectivity_unstable(metric: dict[str, Any]) -> str | None:
    value = metric.get("value")
    if value is not None and value < 0:
        return (
            f"negative selectivity ({value:.3g}): the readout decodes the control task (random labels per object "
            "type) better than the position, so it memorises object identities; with this many scenes the "
            "position score says little about the model"
        )
    return None


def _retention(meaning: str, **details: Any) -> MetricSpec:
    return MetricSpec(
        meaning,
        **details,
        reference=1.0,
        reference_label="lossless (1; 0 = everything lost)",
        reference_is="ideal",
        max_ci_width=0.6,
        unstable_if=_retention_unstable,
    )


METRIC_SPECS: dict[str, MetricSpec] = {
    "position_retention": _retention(
        "share of the decodable position information (above chance) that survives the projector, mean over the "
        "position tasks; 1 = nothing lost, 0 = all lost",
        computed="mean over the position tasks of (stage score - chance) / (vision encoder score - chance), chance "
        "= the label-permutation null; primary readout",
        ci="paired bootstrap over scenes",
        unpaired="a ratio of two cross-validated scores; the above-chance accuracies pair",
    ),
    "grid_cell_retention": _retention(
        "retention of the object's 3x3 grid cell through the projector",
        computed="(stage score - chance) / (vision encoder score - chance), chance = the label-permutation null; "
        "primary readout",
        ci="paired bootstrap over scenes",
        unpaired="a ratio of two cross-validated scores; the above-chance accuracies pair",
    ),
    "half_retention": _retention(
        "retention of the object's left/right half through the projector",
        computed="(stage score - chance) / (vision encoder score - chance), chance = the label-permutation null; "
        "primary readout",
        ci="paired bootstrap over scenes",
        unpaired="a ratio of two cross-validated scores; the above-chance accuracies pair",
    ),
    "relation_retention": _retention(
        "retention of left-of / above between two objects through the projector",
        computed="mean over left-of / above of (stage score - chance) / (vision encoder score - chance), chance = "
        "the label-permutation null; primary readout",
        ci="paired bootstrap over scenes",
        unpaired="a ratio of two cross-validated scores; the above-chance accuracies pair",
    ),
    "colour_retention": MetricSpec(
        "retention of colour, a control attribute the projector should keep; far from 1 means the probe itself "
        "misbehaves",
        better="near_reference",
        reference=1.0,
        reference_label="lossless",
        reference_is="ideal",
        max_ci_width=0.6,
        unstable_if=_retention_unstable,
        computed="(stage score - chance) / (vision encoder score - chance), chance = the label-permutation null; "
        "primary readout",
        ci="paired bootstrap over scenes",
        unpaired="a ratio of two cross-validated scores; the above-chance accuracies pair",
    ),
    "grid_cell_selectivity": MetricSpec(
        "grid-cell accuracy minus control-task accuracy (Hewitt & Liang): how much of the readout's success is "
        "position rather than memorisation",
        reference=0.0,
        reference_label="no selectivity",
        unstable_if=_selectivity_unstable,
        computed="grid-cell accuracy - control-task accuracy (Hewitt & Liang 2019)",
        ci="paired bootstrap over scenes",
        unpaired="a difference of two cross-validated scores",
    ),
    "projector_cka": MetricSpec(
        "representation similarity (debiased linear CKA) of the projector's tokens to the vision encoder's",
        reference=None,
        reference_label="permutation null",
        computed="debiased linear CKA of the raw tokens, projector vs vision encoder",
        ci="jackknife over images; null: images of one side permuted",
        unpaired="a similarity over all images, not a sum over examples",
    ),
    "projector_knn_overlap": MetricSpec(
        "share of each image's 10 nearest images kept through the projector",
        reference=None,
        reference_label="random neighbours k/(n-1)",
        computed="share of each image's 10 nearest images kept through the projector",
        ci="bootstrap over images; null k/(n-1)",
        unpaired="a neighbourhood statistic over all images",
    ),
    "untrained_grid_cell_accuracy": MetricSpec(
        "grid-cell accuracy at the projector of a randomly initialised copy: what architecture alone gives",
        better="neither",
        computed="grid-cell accuracy at the projector of a randomly initialised copy",
        ci="",
        unpaired="descriptive",
    ),
    "projector_grid_cell_above_chance": MetricSpec(
        "grid-cell accuracy from the projector's tokens minus chance; near 0 the layout is lost",
        reference=0.0,
        reference_label="chance",
        computed="out-of-fold accuracy of the object's 3x3 cell decoded from the projector's tokens in order "
        "(flattened readout) minus the majority cell's share",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="scene (out-of-fold hit minus chance)",
        failure="the object's position cannot be read from the projector's tokens above chance: the projector loses "
        "the image's spatial layout",
    ),
    "projector_grid_cell_in_content_above_chance": MetricSpec(
        "grid-cell accuracy from the content of the projector's tokens, whatever their order, minus chance; near 0 "
        "the tokens carry no position of their own (only their order does: a vision tower without position "
        "information)",
        reference=0.0,
        reference_label="chance",
        computed="the same from the content of the projector's tokens, whatever their order (salience-attention "
        "pooled readout)",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="scene (out-of-fold hit minus chance)",
        failure="the projector's tokens do not say where the object is by their content (only their order might): "
        "the vision tower carries no position information",
    ),
    "whatsup_accuracy": MetricSpec(
        "the true relation caption beats the same words with the objects swapped (What'sUp)",
        reference=0.5,
        reference_label="chance",
        kinds=(DUAL_ENCODER,),
        computed="true relation caption scores above the same words with the objects swapped / images",
        ci="percentile bootstrap over images",
        unpaired="not stored per example",
    ),
}
