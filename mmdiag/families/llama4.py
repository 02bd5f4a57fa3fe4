"""Llama 4 (Scout / Maverick): tiles + global view, pixel shuffle, chunked attention on RoPE layers, NoPE global layers,
MoE."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="llama4",
    title="Llama 4",
    architectures=("Llama4ForConditionalGeneration",),
    adapter="mmdiag.adapters.llama4:Llama4Adapter",
    modules={
        "vision_encoder": "vision_model",
        "projector": "multi_modal_projector",
        "language_model": "language_model",
    },
    tiny=(
        TinyBuild("llama4", "mmdiag.checkpoints.tiny_llama4:build_llama4", stage_tokens=4),
        TinyBuild("llama4_all_moe", "mmdiag.checkpoints.tiny_llama4:build_llama4", {"moe_layers": (0, 1)}, 4),
    ),
    attention="chunked",
    limits=(
        "questions are not packed (a packed 4D mask would replace the chunked layers' chunk mask)",
        "spatial probes read the whole-image view (the global view when tiled)",
        "tokens wholly in the tile padding show no region",
    ),
)
