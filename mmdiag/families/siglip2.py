"""SigLIP 2 (NaFlex)."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="siglip2",
    title="SigLIP 2",
    architectures=("Siglip2Model",),
    adapter="mmdiag.adapters.siglip2:Siglip2Adapter",
    tiny=(TinyBuild("siglip2", "mmdiag.checkpoints.tiny:build_siglip2", stage_tokens=1),),
    kind="dual_encoder",
    tokens="pooled",
    attention="none",
    stages=("vision_encoder", "image_embedding"),
    limits=("no language model: attention is the pooling head's query over the real patches",),
)
