"""open_clip models (`open_clip:ARCH` or a folder)."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="open_clip",
    title="open_clip",
    architectures=("open_clip",),
    adapter="mmdiag.adapters.open_clip:OpenClipAdapter",
    tiny=(TinyBuild("open_clip", "mmdiag.checkpoints.tiny:build_open_clip", stage_tokens=1, stage_width=16),),
    kind="dual_encoder",
    tokens="pooled",
    attention="none",
    min_transformers=None,
    stages=("vision_encoder", "image_embedding"),
    limits=("no language model: attention is the CLS token's over patches",),
)
