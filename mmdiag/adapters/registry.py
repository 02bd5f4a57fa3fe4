"""Adapters keyed by ``config.architectures``; built-ins are lazy, third parties use entry points.

A third-party package adds a family without touching mmdiag by declaring, in its pyproject::

    [project.entry-points."mmdiag.adapters"]
    Qwen2VLForConditionalGeneration = "their_pkg.adapters:Qwen2VLAdapter"

or, at run time, ``AdapterRegistry.register("Arch", "pkg.module:Class")`` on a registry it owns. mmdiag's own
reference zoo registers its architecture that way (``pyproject.toml``), so this module names no zoo code.
"""

from __future__ import annotations

from mmdiag.lazy_registry import LazyRegistry

ENTRY_POINT_GROUP = "mmdiag.adapters"

BUILTIN_ADAPTERS: dict[str, str] = {
    "LlavaForConditionalGeneration": "mmdiag.adapters.llava:LlavaAdapter",
    "LlavaNextForConditionalGeneration": "mmdiag.adapters.llava_next:LlavaNextAdapter",
    "LlavaOnevisionForConditionalGeneration": "mmdiag.adapters.llava_next:LlavaOnevisionAdapter",
    "PaliGemmaForConditionalGeneration": "mmdiag.adapters.paligemma:PaliGemmaAdapter",
    "Qwen2VLForConditionalGeneration": "mmdiag.adapters.qwen2_vl:Qwen2VLAdapter",
    "Qwen2_5_VLForConditionalGeneration": "mmdiag.adapters.qwen2_vl:Qwen2VLAdapter",
    "InternVLForConditionalGeneration": "mmdiag.adapters.internvl:InternVLAdapter",
    "Idefics3ForConditionalGeneration": "mmdiag.adapters.idefics3:Idefics3Adapter",
    "SmolVLMForConditionalGeneration": "mmdiag.adapters.idefics3:Idefics3Adapter",
    "Blip2ForConditionalGeneration": "mmdiag.adapters.blip2:Blip2Adapter",
    "InstructBlipForConditionalGeneration": "mmdiag.adapters.instructblip:InstructBlipAdapter",
    "CLIPModel": "mmdiag.adapters.clip_hf:HFClipAdapter",
    "SiglipModel": "mmdiag.adapters.siglip:SiglipAdapter",
    "Siglip2Model": "mmdiag.adapters.siglip2:Siglip2Adapter",
    "open_clip": "mmdiag.adapters.open_clip:OpenClipAdapter",
}


class AdapterRegistry(LazyRegistry):
    """Architecture name -> adapter class (a :class:`~mmdiag.adapters.base.Adapter` subclass), imported only when
    asked for."""

    kind = "adapter for architecture"
    base = "mmdiag.adapters.base:Adapter"

    def __init__(self, builtins: dict[str, str] | None = None, load_entry_points: bool = True) -> None:
        super().__init__(BUILTIN_ADAPTERS if builtins is None else builtins, ENTRY_POINT_GROUP, load_entry_points)

    def supported(self) -> list[str]:
        return sorted(self.names())

    def get(self, architecture: str) -> type:
        """The adapter class for ``architecture`` (KeyError if none is registered)."""
        return self._resolve(architecture)


def default_registry() -> AdapterRegistry:
    """A registry of the built-in families plus every installed ``mmdiag.adapters`` entry point."""
    return AdapterRegistry()
