"""LLaVA-1.6: anyres tiles + base view, row-end tokens."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="llava_next",
    title="LLaVA-NeXT",
    architectures=("LlavaNextForConditionalGeneration",),
    adapter="mmdiag.adapters.llava_next:LlavaNextAdapter",
    tiny=(TinyBuild("llava_next", "mmdiag.checkpoints.tiny_anyres:build_llava_next"),),
    limits=(
        "row-end tokens count as image tokens and show no region",
        "spatial probes read the base view (tile 0)",
    ),
)
