"""Gemma 3: SigLIP tower, average-pool projector, Gemma 3 LM whose image tokens attend both ways within their view."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="gemma3",
    title="Gemma 3",
    architectures=("Gemma3ForConditionalGeneration",),
    adapter="mmdiag.adapters.gemma3:Gemma3Adapter",
    tiny=(TinyBuild("gemma3", "mmdiag.checkpoints.tiny_gemma3:build_gemma3", stage_tokens=4),),
    attention="bidirectional-image",
    limits=(
        "questions are not packed (a packed 4D mask would make the image block causal and drop the sliding window)",
        "spatial stages read the whole image without pan-and-scan crops",
        "pan-and-scan stays off unless the checkpoint's preprocessor config turns it on",
    ),
)
