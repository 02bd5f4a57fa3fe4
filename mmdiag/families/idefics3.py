"""Idefics3: image splits + global view between tag tokens, pixel-shuffle connector."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="idefics3",
    title="Idefics3",
    architectures=("Idefics3ForConditionalGeneration",),
    adapter="mmdiag.adapters.idefics3:Idefics3Adapter",
    modules={
        "vision_encoder": "model.vision_model",
        "projector": "model.connector",
        "language_model": "model.text_model",
    },
    tiny=(TinyBuild("idefics3", "mmdiag.checkpoints.tiny_idefics3:build_idefics3", stage_tokens=4),),
    limits=("spatial probes read the global view",),
)
