"""The information-flow probe's metrics, each defined once (see :mod:`mmdiag.probes.metric_spec`)."""

from __future__ import annotations

from mmdiag.probes.metric_spec import MetricSpec

BONFERRONI = "cluster bootstrap over scenes, Bonferroni-adjusted over the layer windows (simultaneous 95%)"

METRIC_SPECS: dict[str, MetricSpec] = {
    "image_dependence": MetricSpec(
        "how much the answers depend on attention to the image: the fall in P(correct answer) when attention from the "
        "question to every image token is blocked in every LLM layer",
        reference=0.0,
        reference_label="an image-blind model",
        computed="per question: P(correct) as measured - P(correct) under knockout:layers=all,from=question; mean",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="question",
        failure="blocking the question's attention to the image does not change the answers: they do not come from "
        "the image",
    ),
    "read_until_layer": MetricSpec(
        "the LLM layer from which on blocking the question's attention to the image (one window at a time) changes "
        "no answer detectably: where the image's evidence has reached the text (0: never read; L: read to the end)",
        better="neither",
        computed="the first layer l such that no window starting at l or later lowers P(correct) with a simultaneous "
        "95% CI below 0",
        ci="",
        unpaired="a layer index decided by CIs, not a mean over questions",
        comparable=False,
    ),
    "peak_window_drop": MetricSpec(
        "the largest fall in P(correct answer) when the question's attention to the image is blocked in one window "
        "of layers: where the image's evidence is read most",
        better="neither",
        reference=0.0,
        reference_label="an image-blind model",
        computed="max over windows of mean(P(correct) - P(correct) under the window's knockout)",
        ci=BONFERRONI,
        unpaired="the window it is read at can differ between runs",
        comparable=False,
    ),
    "fastv_safe_layer": MetricSpec(
        "FastV's claim checked: the first layer K from which pruning half the image tokens (FastV at every K' >= K) "
        "changes accuracy undetectably",
        better="neither",
        computed="the first K such that accuracy under fastv:k=K',ratio=0.5 minus accuracy as measured has a "
        "simultaneous 95% CI containing 0 for every K' >= K",
        ci="",
        unpaired="a layer index decided by CIs",
        comparable=False,
    ),
    "layout_use": MetricSpec(
        "is the decoded layout used? The share of left/right answers that flip when the scene's image tokens are "
        "replaced, at the projector output, by those of its mirror image",
        reference=0.0,
        reference_label="a model whose answers ignore where things are",
        computed="left/right questions whose decision (P(yes) > P(no)) differs between the scene and the scene with "
        "its mirror's projector output patched in / left/right questions",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="question",
        failure="replacing the image tokens by the mirror's does not flip left/right answers: the position the "
        "spatial probe decodes is not what the answers use",
    ),
    "layout_read_by_layer": MetricSpec(
        "the LLM layer by which the text has read the layout from the image tokens: patching the mirror's image-token "
        "states in from this layer on flips no left/right answer detectably (0: the layout is never used)",
        better="neither",
        computed="1 + the last layer l whose patch (mirror image-token states from layer l on) flips a share of "
        "left/right answers with a simultaneous 95% CI above 0",
        unpaired="a layer index decided by CIs",
        comparable=False,
    ),
    "mirror_flip": MetricSpec(
        "the same share for the mirror image itself (its whole computation, not only the projector output): the most "
        "layout_use can reach",
        better="neither",
        computed="left/right questions whose decision differs between the scene and its mirror image / questions",
        ci="percentile bootstrap over scenes",
        paired="mean",
        paired_unit="question",
    ),
}
