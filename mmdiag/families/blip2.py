"""BLIP-2: Q-Former queries, OPT / Llama-style or Flan-T5 LM."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="blip2",
    title="BLIP-2",
    architectures=("Blip2ForConditionalGeneration",),
    adapter="mmdiag.adapters.blip2:Blip2Adapter",
    tiny=(
        TinyBuild("blip2", "mmdiag.checkpoints.tiny:build_query_transformer", stage_tokens=4),
        TinyBuild("blip2_t5", "mmdiag.checkpoints.tiny:build_query_transformer", {"t5": True}, stage_tokens=4),
    ),
    tokens="queries",
    stages=("vision_encoder", "qformer", "projector"),
    limits=(
        "object-region attention: learned queries have no place on the image",
        "with a Flan-T5 LM: attention is the decoder's cross-attention, each question runs in full, "
        "and image-free contrasts (PAI) are refused",
    ),
)
