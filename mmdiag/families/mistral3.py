"""Mistral 3 (Mistral Small 3.1 / 3.2): Pixtral tower, 2x2 patch merger, Mistral LM; ``[IMG]`` rows between breaks."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="mistral3",
    title="Mistral 3",
    architectures=("Mistral3ForConditionalGeneration",),
    adapter="mmdiag.adapters.mistral3:Mistral3Adapter",
    tiny=(TinyBuild("mistral3", "mmdiag.checkpoints.tiny_mistral3:build_mistral3", stage_tokens=4),),
    limits=(
        "a feature batch shares one grid: other sizes are resized to the first image's",
        "row-break tokens are text, not image tokens",
    ),
)
