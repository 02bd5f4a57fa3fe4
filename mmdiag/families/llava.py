"""LLaVA-1.5 and checkpoints that keep its module tree (Pixtral weights, the zoo's projector variants)."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="llava",
    title="LLaVA-1.5",
    architectures=("LlavaForConditionalGeneration",),
    adapter="mmdiag.adapters.llava:LlavaAdapter",
    tiny=(TinyBuild("llava", "mmdiag.checkpoints.tiny:build_llava"),),
    tokens="grid",
)
