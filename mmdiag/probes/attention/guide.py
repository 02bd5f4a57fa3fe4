"""How to read the attention probe's headline metrics (see :mod:`mmdiag.probes.guidance`)."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.guidance import MetricGuide


def image_token_share(result: dict[str, Any]) -> float | None:
    """The image's share of the prompt's tokens: the image mass of uniform attention."""
    counts = result.get("token_counts") or {}
    total = sum(counts.values())
    return counts.get("image", 0.0) / total if total else None


_SHARE = "uniform attention (the image's share of tokens)"
# image-mass metrics follow the number of image tokens, which differs across projector designs: not comparable

GUIDES: dict[str, MetricGuide] = {
    "mean_image_mass": MetricGuide(
        "share of the answer position's attention that lands on image tokens (mean over layers and heads); low "
        "means the language model reads mostly text - but high mass alone does not show the image is used",
        reference=image_token_share, reference_label=_SHARE, comparable=False),
    "sink_free_image_mass": MetricGuide(
        "image mass after removing attention sinks (BOS, outlier image tokens) and renormalising",
        reference=image_token_share, reference_label=_SHARE, comparable=False),
    "mean_sink_mass": MetricGuide("attention parked on sink tokens (BOS and outlier image tokens)", better="neither"),
    "mean_bos_mass": MetricGuide("attention parked on the BOS token", better="neither"),
    "visual_sinks_per_example": MetricGuide("image tokens with outlier activations (visual sinks) per example",
                                            better="neither"),
    "image_text_efficiency_ratio": MetricGuide(
        "attention per image token over attention per text token (FastV); below 1 the model attends to an image "
        "token less than to a text token", reference=1.0, reference_label="equal attention per token"),
    "blind_answer_shift": MetricGuide(
        "how far P(yes) moves when the image is replaced by its mean colour; near 0 the answers ignore the image",
        reference=0.0, reference_label="an image-blind model"),
    "blind_tv_distance": MetricGuide(
        "how much the whole next-token distribution moves under the same swap", reference=0.0,
        reference_label="an image-blind model"),
    "noise_answer_shift": MetricGuide("how far P(yes) moves when the image is replaced by noise", reference=0.0,
                                      reference_label="an image-blind model"),
    "object_attention_ratio": MetricGuide(
        "image attention per object patch over per background patch; above 1 the model looks at the objects",
        reference=1.0, reference_label="no preference for objects"),
    "image_mass_low_from_layer": MetricGuide(
        "the first layer from which image mass stays below 0.1 (undefined when it never does: good)",
        better="higher"),
    "untrained_mean_image_mass": MetricGuide(
        "image mass of a randomly initialised copy: what the architecture gives before any learning",
        better="neither"),
    "untrained_image_text_efficiency_ratio": MetricGuide("efficiency ratio of the untrained copy", better="neither"),
    "answer_image_mass": MetricGuide("image mass at generated answer tokens", reference=image_token_share,
                                     reference_label=_SHARE, comparable=False),
    "encoder_text_image_mass": MetricGuide(
        "T5 encoder (BLIP-2 / InstructBLIP with Flan-T5): share of the text tokens' self-attention that lands on the "
        "image tokens; low means the question is encoded mostly from text", reference=image_token_share,
        reference_label=_SHARE, comparable=False),
    "qformer_object_attention_ratio": MetricGuide(
        "Q-Former cross-attention per object patch over per background patch", reference=1.0,
        reference_label="no preference for objects"),
    "modality_gap": MetricGuide(
        "distance between the centres of image and text embeddings; large means the two encoders are not aligned",
        better="lower"),
    "untrained_modality_gap": MetricGuide("modality gap of a randomly initialised copy", better="neither"),
}
