"""Qwen3-VL (dense and MoE): Qwen2-VL's merger and M-RoPE (interleaved), plus DeepStack mergers into early layers."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="qwen3_vl",
    title="Qwen3-VL",
    architectures=("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"),
    adapter="mmdiag.adapters.qwen3_vl:Qwen3VLAdapter",
    modules={"vision_encoder": "model.visual", "projector": "model.visual.merger"},
    tiny=(
        TinyBuild("qwen3_vl", "mmdiag.checkpoints.tiny_qwen3_vl:build_qwen3_vl", stage_tokens=4),
        TinyBuild("qwen3_vl_moe", "mmdiag.checkpoints.tiny_qwen3_vl:build_qwen3_vl", {"moe": True}, stage_tokens=4),
    ),
    tokens="regions",
    attention="causal",
    limits=(
        "a feature batch shares one grid: other sizes are resized to the first image's",
        "DeepStack mergers also feed the image positions of the first LLM layers: the projector stage is the main "
        "merger's output only (DeepStack tokens are extra stages, deepstack_stages())",
    ),
)
