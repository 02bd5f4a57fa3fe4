"""GLM-4.1V / GLM-4.5V (MoE): Qwen2-VL-style patches and M-RoPE, a conv downsample + gated-MLP merger, GLM-4 LM."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="glm4v",
    title="GLM-4.1V / GLM-4.5V",
    architectures=("Glm4vForConditionalGeneration", "Glm4vMoeForConditionalGeneration"),
    adapter="mmdiag.adapters.glm4v:Glm4vAdapter",
    modules={"vision_encoder": "model.visual", "projector": "model.visual.merger"},
    tiny=(
        TinyBuild("glm4v", "mmdiag.checkpoints.tiny_glm4v:build_glm4v", stage_tokens=4),
        TinyBuild("glm4v_moe", "mmdiag.checkpoints.tiny_glm4v:build_glm4v", {"moe": True}, stage_tokens=4),
    ),
    tokens="regions",
    attention="causal",
    limits=(
        "a feature batch shares one grid: other sizes are resized to the first image's",
        "yes/no is read at the first answer token: Thinking checkpoints answer after <think>...</think>",
    ),
)
