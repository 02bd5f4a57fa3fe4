"""InternVL (transformers-native): dynamic tiles + thumbnail, pixel shuffle."""

from mmdiag.families import Family, TinyBuild

FAMILY = Family(
    name="internvl",
    title="InternVL 2.5 / 3",
    architectures=("InternVLForConditionalGeneration",),
    adapter="mmdiag.adapters.internvl:InternVLAdapter",
    tiny=(TinyBuild("internvl", "mmdiag.checkpoints.tiny_internvl:build_internvl", stage_tokens=4),),
    limits=("spatial probes read the first view",),
)
