"""Aya Vision: SigLIP tower, pixel-shuffle projector, Cohere2 LM (interleaved RoPE, NoPE full layers), tiles."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="aya_vision",
    title="Aya Vision",
    architectures=("AyaVisionForConditionalGeneration",),
    adapter="mmdiag.adapters.aya_vision:AyaVisionAdapter",
    tiny=(TinyBuild("aya_vision", "mmdiag.checkpoints.tiny_aya_vision:build_aya_vision", stage_tokens=4),),
    limits=(
        "spatial probes read the whole-image view (the thumbnail when tiled)",
        "questions pack only while every prompt fits the sliding window (else a cached prefix)",
    ),
)
