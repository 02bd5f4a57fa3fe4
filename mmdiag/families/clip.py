"""CLIP in transformers."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="clip",
    title="CLIP (HF)",
    architectures=("CLIPModel",),
    adapter="mmdiag.adapters.clip_hf:HFClipAdapter",
    tiny=(TinyBuild("clip", "mmdiag.checkpoints.tiny:build_clip", stage_tokens=1, stage_width=16),),
    kind="dual_encoder",
    tokens="pooled",
    attention="none",
    stages=("vision_encoder", "image_embedding"),
    limits=("no language model: attention is the CLS token's over patches, hallucination is caption choice",),
)
