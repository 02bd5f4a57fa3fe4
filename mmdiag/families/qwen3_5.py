"""Qwen3.5 (dense and MoE): Qwen3-VL-style tower and merger, a hybrid LM of Gated DeltaNet and gated softmax layers."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="qwen3_5",
    title="Qwen3.5",
    architectures=("Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"),
    adapter="mmdiag.adapters.qwen3_5:Qwen3_5Adapter",
    modules={"vision_encoder": "model.visual", "projector": "model.visual.merger"},
    tiny=(
        TinyBuild("qwen3_5", "mmdiag.checkpoints.tiny_qwen3_5:build_qwen3_5", stage_tokens=4),
        TinyBuild("qwen3_5_moe", "mmdiag.checkpoints.tiny_qwen3_5:build_qwen3_5", {"moe": True}, stage_tokens=4),
    ),
    attention="hybrid-linear",
    limits=(
        "attention rows, knockout and PAI read and edit the softmax layers only: the linear-attention path stays open",
        "the attention probe's layers are the full-attention layers (lm_attention_layer_indices)",
        "a feature batch shares one grid: other sizes are resized to the first image's",
        "yes/no is read with thinking switched off (enable_thinking=False)",
    ),
    min_transformers="5.25",
)
