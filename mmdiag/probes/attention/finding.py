"""The attention probe's finding for the top of the report (:class:`mmdiag.probes.sections.Finding`)."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.attention.report import layer_curves
from mmdiag.probes.sections import Finding, ci_side, value_ci

SIDE_WORDS = {"below": "below", "above": "above", "covers": "about"}


def finding(result: dict[str, Any], records: list[dict[str, Any]]) -> Finding:
    """Generative models: the image's share of the answer position's attention against uniform attention, and
    how far the answer moves when the image is taken away. Dual encoders: attention on objects vs background."""
    metrics = result.get("metrics") or {}
    mass = metrics.get("mean_image_mass")
    if mass and mass.get("value") is not None:
        return _generative(result, metrics, mass)
    ratio = metrics.get("object_attention_ratio")
    sentence = "No attention mass was measured on this run (see the attention section)."
    if ratio and ratio.get("value") is not None:
        sentence = (
            f"Image attention per object patch is {value_ci(ratio, digits=2)} times that per background patch "
            "(1 = no preference for the objects)"
        )
        gap = metrics.get("modality_gap")
        if gap and gap.get("value") is not None:
            sentence += f"; the modality gap between image and text embeddings is {value_ci(gap)}"
        sentence += "."
    return Finding("Attention to the image", sentence, no_figure="dual encoders have no LLM layers to draw")


def _generative(result: dict[str, Any], metrics: dict[str, Any], mass: dict[str, Any]) -> Finding:
    reference = (mass.get("guide") or {}).get("reference")
    sentence = f"The answer position gives {value_ci(mass, percent=True)} of its attention to image tokens"
    side = ci_side(mass, reference)
    if side is not None:
        sentence += f", {SIDE_WORDS[side]} the {100 * reference:.1f} % that uniform attention would give"
    shift = metrics.get("blind_answer_shift")
    if shift and shift.get("value") is not None:
        sentence += (
            f"; replacing the image by its mean colour moves P(yes) by {value_ci(shift)} (0 for a model that "
            "ignores the image)"
        )
    sentence += "."
    steps = []
    if side == "below":
        steps.append(
            "See where the image is read: the per-layer curve and the heads table (Attention dominance, below); "
            "low image mass is no defect while the answers move with the image."
        )
    if ci_side(shift, 0.0) != "above":
        steps.append("The answers do not detectably depend on the image: check the projector with --suite projector.")
    figure = layer_curves(result)
    if figure is not None:
        figure = type(figure)(
            figure.kind,
            {**figure.data, "size": [4.6, 2.6], "legend_fontsize": 6},
            figure.alt,
            "attention mass per LLM layer",
        )
    return Finding(
        "Attention to the image",
        sentence,
        figure=figure,
        no_figure="" if figure is not None else "no per-layer attention was stored",
        next_steps=tuple(steps),
    )
