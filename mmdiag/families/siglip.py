"""SigLIP."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="siglip",
    title="SigLIP",
    architectures=("SiglipModel",),
    adapter="mmdiag.adapters.siglip:SiglipAdapter",
    tiny=(TinyBuild("siglip", "mmdiag.checkpoints.tiny:build_siglip", stage_tokens=1),),
    kind="dual_encoder",
    tokens="pooled",
    attention="none",
    stages=("vision_encoder", "image_embedding"),
    limits=("no language model: attention is the pooling head's query over patches",),
)
