"""SmolVLM: Idefics3's tree; its processor needs num2words."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="smolvlm",
    title="SmolVLM",
    architectures=("SmolVLMForConditionalGeneration",),
    adapter="mmdiag.adapters.idefics3:Idefics3Adapter",
    modules={
        "vision_encoder": "model.vision_model",
        "projector": "model.connector",
        "language_model": "model.text_model",
    },
    tiny=(TinyBuild("smolvlm", "mmdiag.checkpoints.tiny_idefics3:build_idefics3", {"smolvlm": True}, stage_tokens=4),),
    limits=("spatial probes read the global view",),
    extras=("num2words",),
)
