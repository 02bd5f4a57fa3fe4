"""Qwen2-VL: native-resolution ViT, 2x2 patch merger, M-RoPE."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="qwen2_vl",
    title="Qwen2-VL",
    architectures=("Qwen2VLForConditionalGeneration",),
    adapter="mmdiag.adapters.qwen2_vl:Qwen2VLAdapter",
    modules={"vision_encoder": "model.visual", "projector": "model.visual.merger"},
    tiny=(TinyBuild("qwen2_vl", "mmdiag.checkpoints.tiny_qwen:build_qwen2_vl", stage_tokens=4),),
    limits=("a feature batch shares one grid: other sizes are resized to the first image's",),
)
