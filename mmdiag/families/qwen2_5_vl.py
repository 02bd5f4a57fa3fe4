"""Qwen2.5-VL: as Qwen2-VL with windowed tower attention."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="qwen2_5_vl",
    title="Qwen2.5-VL",
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    adapter="mmdiag.adapters.qwen2_vl:Qwen2VLAdapter",
    modules={"vision_encoder": "model.visual", "projector": "model.visual.merger"},
    tiny=(TinyBuild("qwen2_5_vl", "mmdiag.checkpoints.tiny_qwen:build_qwen2_vl", {"v2_5": True}, stage_tokens=4),),
    limits=("a feature batch shares one grid: other sizes are resized to the first image's",),
)
