"""PaliGemma: SigLIP tower, linear projector, Gemma with a prefix-LM mask."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="paligemma",
    title="PaliGemma 1 / 2",
    architectures=("PaliGemmaForConditionalGeneration",),
    adapter="mmdiag.adapters.paligemma:PaliGemmaAdapter",
    tiny=(TinyBuild("paligemma", "mmdiag.checkpoints.tiny_prefix_lm:build_paligemma"),),
    tokens="grid",
    attention="prefix-lm",
    limits=("LLM-layer image states are read under one fixed prompt",),
)
