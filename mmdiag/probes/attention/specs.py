"""The attention probe's metrics, each defined once (see :mod:`mmdiag.probes.metric_spec`)."""

from __future__ import annotations

from typing import Any

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE
from mmdiag.probes.metric_spec import MetricSpec


def image_token_share(result: dict[str, Any]) -> float | None:
    """The image's share of the prompt's tokens: the image mass of uniform attention."""
    counts = result.get("token_counts") or {}
    total = sum(counts.values())
    return counts.get("image", 0.0) / total if total else None


_GEN, _DUAL, _BOTH = (GENERATIVE,), (DUAL_ENCODER,), (GENERATIVE, DUAL_ENCODER)
_BOOT = "percentile bootstrap over examples"
_AT_ANSWER = "at the last prompt token (the answer position), mean over layers and heads"
_SHARE = "uniform attention (the image's share of tokens)"
# image-mass metrics follow the number of image tokens, which differs across projector designs: not comparable

METRIC_SPECS: dict[str, MetricSpec] = {
    "mean_image_mass": MetricSpec(
        "share of the answer position's attention that lands on image tokens (mean over layers and heads); low "
        "means the language model reads mostly text - but high mass alone does not show the image is used",
        reference=image_token_share,
        reference_label=_SHARE,
        comparable=False,
        kinds=_GEN,
        computed="attention mass on image tokens " + _AT_ANSWER,
        ci=_BOOT,
        paired="mean",
        failure="the language model gives the image tokens almost no attention",
    ),
    "sink_free_image_mass": MetricSpec(
        "image mass after removing attention sinks (BOS, outlier image tokens) and renormalising",
        reference=image_token_share,
        reference_label=_SHARE,
        comparable=False,
        kinds=_GEN,
        computed="image mass with BOS and visual-sink tokens removed and the rest renormalised",
        ci=_BOOT,
        unpaired="mean_image_mass pairs",
    ),
    "mean_sink_mass": MetricSpec(
        "attention parked on sink tokens (BOS and outlier image tokens)",
        better="neither",
        kinds=_GEN,
        computed="mass on BOS and visual-sink tokens " + _AT_ANSWER,
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "mean_bos_mass": MetricSpec(
        "attention parked on the BOS token",
        better="neither",
        kinds=_GEN,
        computed="mass on the BOS token " + _AT_ANSWER,
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "visual_sinks_per_example": MetricSpec(
        "image tokens with outlier activations (visual sinks) per example",
        better="neither",
        kinds=_GEN,
        computed="image tokens whose peak hidden activation is >= the sink threshold times the median token's",
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "image_text_efficiency_ratio": MetricSpec(
        "attention per image token over attention per text token (FastV); below 1 the model attends to an image "
        "token less than to a text token",
        reference=1.0,
        reference_label="equal attention per token",
        kinds=_GEN,
        computed="(image mass / image tokens) / (text mass / text tokens), FastV's efficiency",
        ci=_BOOT,
        unpaired="a ratio of means",
    ),
    "blind_answer_shift": MetricSpec(
        "how far P(yes) moves when the image is replaced by its mean colour; near 0 the answers ignore the image",
        reference=0.0,
        reference_label="an image-blind model",
        kinds=_GEN,
        computed="|P(yes) with the image - P(yes) with its mean colour|, mean over examples",
        ci=_BOOT,
        paired="mean",
        failure="replacing the image with a blank one of its mean colour barely moves the answer: the language "
        "model ignores the image tokens",
    ),
    "blind_tv_distance": MetricSpec(
        "how much the whole next-token distribution moves under the same swap",
        reference=0.0,
        reference_label="an image-blind model",
        kinds=_GEN,
        computed="total variation distance of the next-token distributions, image vs its mean colour",
        ci=_BOOT,
        unpaired="blind_answer_shift pairs",
    ),
    "noise_answer_shift": MetricSpec(
        "how far P(yes) moves when the image is replaced by noise",
        reference=0.0,
        reference_label="an image-blind model",
        kinds=_GEN,
        computed="|P(yes) with the image - P(yes) with Gaussian noise|, mean over examples",
        ci=_BOOT,
        unpaired="blind_answer_shift pairs",
        failure="replacing the image with noise barely moves the answer: the language model ignores the image tokens",
    ),
    "object_attention_ratio": MetricSpec(
        "image attention per object patch over per background patch; above 1 the model looks at the objects",
        reference=1.0,
        reference_label="no preference for objects",
        kinds=_BOTH,
        computed="image attention per object patch / per background patch (dual encoders: the pooling query's)",
        ci="",
        unpaired="a ratio of sums over all examples",
    ),
    "image_mass_low_from_layer": MetricSpec(
        "the first layer from which image mass stays below 0.1 (undefined when it never does: good)",
        better="higher",
        kinds=_GEN,
        computed="first LLM layer from which the mean image mass stays below the threshold",
        ci="",
        unpaired="a layer index of the mean curve",
    ),
    "untrained_mean_image_mass": MetricSpec(
        "image mass of a randomly initialised copy: what the architecture gives before any learning",
        better="neither",
        kinds=_GEN,
        computed="mean_image_mass of a randomly initialised copy of the model",
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "untrained_image_text_efficiency_ratio": MetricSpec(
        "efficiency ratio of the untrained copy",
        better="neither",
        kinds=_GEN,
        computed="the efficiency ratio of a randomly initialised copy",
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "answer_image_mass": MetricSpec(
        "image mass at generated answer tokens",
        reference=image_token_share,
        reference_label=_SHARE,
        comparable=False,
        kinds=_GEN,
        computed="image mass at greedily generated answer tokens (--answer-tokens)",
        ci=_BOOT,
        unpaired="mean_image_mass pairs",
    ),
    "encoder_text_image_mass": MetricSpec(
        "T5 encoder (BLIP-2 / InstructBLIP with Flan-T5): share of the text tokens' self-attention that lands on the "
        "image tokens; low means the question is encoded mostly from text",
        reference=image_token_share,
        reference_label=_SHARE,
        comparable=False,
        kinds=_GEN,
        computed="T5 encoder self-attention from text tokens to image tokens, mean over layers and heads",
        ci=_BOOT,
        unpaired="descriptive",
    ),
    "qformer_object_attention_ratio": MetricSpec(
        "Q-Former cross-attention per object patch over per background patch",
        reference=1.0,
        reference_label="no preference for objects",
        kinds=_GEN,
        computed="Q-Former cross-attention per object patch / per background patch",
        ci="",
        unpaired="a ratio of sums over all examples",
    ),
    "modality_gap": MetricSpec(
        "distance between the centres of image and text embeddings; large means the two encoders are not aligned",
        better="lower",
        kinds=_DUAL,
        computed="distance between the mean image embedding and the mean text embedding (normalised)",
        ci=_BOOT,
        unpaired="a distance between two means over all examples",
        failure="image and text embeddings sit far apart: the two encoders are not aligned",
    ),
    "untrained_modality_gap": MetricSpec(
        "modality gap of a randomly initialised copy",
        better="neither",
        kinds=_DUAL,
        computed="the modality gap of a randomly initialised copy",
        ci=_BOOT,
        unpaired="descriptive",
    ),
}
