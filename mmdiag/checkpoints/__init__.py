"""Building checkpoints offline: word-level tokenizers and tiny random models of each family."""

TINY_FAMILIES = (
    "llava",
    "llava_next",
    "llava_onevision",
    "paligemma",
    "qwen2_vl",
    "qwen2_5_vl",
    "internvl",
    "idefics3",
    "smolvlm",
    "blip2",
    "blip2_t5",
    "instructblip",
    "instructblip_t5",
    "clip",
    "siglip",
    "siglip2",
    "open_clip",
)
"""Families ``mmdiag tiny`` builds (kept here, free of heavy imports, for the CLI's choices)."""
