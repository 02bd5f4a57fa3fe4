"""How to read the spatial probe's headline metrics (see :mod:`mmdiag.probes.guidance`)."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.guidance import MetricGuide

RETENTION_RANGE = (-0.5, 2.0)  # outside it the ratio's denominator (pre - chance) is too small to trust


def _retention_unstable(metric: dict[str, Any]) -> str | None:
    value = metric.get("value")
    if value is not None and not RETENTION_RANGE[0] <= value <= RETENTION_RANGE[1]:
        return (f"a retention of {value:.3g} lies outside [{RETENTION_RANGE[0]:g}, {RETENTION_RANGE[1]:g}]: the "
                "vision encoder's score is barely above chance, so the ratio divides by almost nothing")
    return None


def _selectivity_unstable(metric: dict[str, Any]) -> str | None:
    value = metric.get("value")
    if value is not None and value < 0:
        return (f"negative selectivity ({value:.3g}): the readout decodes the control task (random labels per object "
                "type) better than the position, so it memorises object identities; with this many scenes the "
                "position score says little about the model")
    return None


def _retention(meaning: str) -> MetricGuide:
    return MetricGuide(meaning, reference=1.0, reference_label="lossless (1; 0 = everything lost)", reference_is="ideal",
                       max_ci_width=0.6, unstable_if=_retention_unstable)


GUIDES: dict[str, MetricGuide] = {
    "position_retention": _retention(
        "share of the decodable position information (above chance) that survives the projector, mean over the "
        "position tasks; 1 = nothing lost, 0 = all lost"),
    "grid_cell_retention": _retention("retention of the object's 3x3 grid cell through the projector"),
    "half_retention": _retention("retention of the object's left/right half through the projector"),
    "relation_retention": _retention("retention of left-of / above between two objects through the projector"),
    "colour_retention": MetricGuide(
        "retention of colour, a control attribute the projector should keep; far from 1 means the probe itself "
        "misbehaves", better="near_reference", reference=1.0, reference_label="lossless", reference_is="ideal", max_ci_width=0.6,
        unstable_if=_retention_unstable),
    "grid_cell_selectivity": MetricGuide(
        "grid-cell accuracy minus control-task accuracy (Hewitt & Liang): how much of the readout's success is "
        "position rather than memorisation", reference=0.0, reference_label="no selectivity",
        unstable_if=_selectivity_unstable),
    "projector_cka": MetricGuide(
        "representation similarity (debiased linear CKA) of the projector's tokens to the vision encoder's",
        reference=None, reference_label="permutation null"),
    "projector_knn_overlap": MetricGuide(
        "share of each image's 10 nearest images kept through the projector", reference=None,
        reference_label="random neighbours k/(n-1)"),
    "untrained_grid_cell_accuracy": MetricGuide(
        "grid-cell accuracy at the projector of a randomly initialised copy: what architecture alone gives",
        better="neither"),
    "projector_grid_cell_above_chance": MetricGuide(
        "grid-cell accuracy from the projector's tokens minus chance; near 0 the layout is lost", reference=0.0,
        reference_label="chance"),
    "projector_grid_cell_in_content_above_chance": MetricGuide(
        "grid-cell accuracy from the content of the projector's tokens, whatever their order, minus chance; near 0 "
        "the tokens carry no position of their own (only their order does: a vision tower without position "
        "information)", reference=0.0, reference_label="chance"),
    "whatsup_accuracy": MetricGuide(
        "the true relation caption beats the same words with the objects swapped (What'sUp)", reference=0.5,
        reference_label="chance"),
}
