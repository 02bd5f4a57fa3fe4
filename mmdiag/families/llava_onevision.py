"""LLaVA-OneVision: anyres with anyres_max shrinking."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="llava_onevision",
    title="LLaVA-OneVision",
    architectures=("LlavaOnevisionForConditionalGeneration",),
    adapter="mmdiag.adapters.llava_next:LlavaOnevisionAdapter",
    tiny=(TinyBuild("llava_onevision", "mmdiag.checkpoints.tiny_anyres:build_llava_next", {"onevision": True}),),
    limits=(
        "row-end tokens count as image tokens and show no region",
        "spatial probes read the base view (tile 0)",
    ),
)
