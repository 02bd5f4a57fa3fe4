"""InstructBLIP: a Q-Former that reads the instruction."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="instructblip",
    title="InstructBLIP",
    architectures=("InstructBlipForConditionalGeneration",),
    adapter="mmdiag.adapters.instructblip:InstructBlipAdapter",
    tiny=(
        TinyBuild(
            "instructblip", "mmdiag.checkpoints.tiny:build_query_transformer", {"instruct": True}, stage_tokens=4
        ),
        TinyBuild(
            "instructblip_t5",
            "mmdiag.checkpoints.tiny:build_query_transformer",
            {"instruct": True, "t5": True},
            stage_tokens=4,
        ),
    ),
    tokens="queries",
    stages=("vision_encoder", "qformer", "projector"),
    limits=(
        "object-region attention: learned queries have no place on the image",
        "with a Flan-T5 LM: attention is the decoder's cross-attention, each question runs in full, "
        "and image-free contrasts (PAI) are refused",
    ),
)
