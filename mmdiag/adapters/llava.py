"""LLaVA family: CLIP-style vision tower -> multi-modal projector -> causal LM.

Module tree (transformers 5): ``model.model.vision_tower``, ``model.model.multi_modal_projector``,
``model.model.language_model`` (a decoder stack), ``model.lm_head``. Projector variants that keep this
tree (the reference zoo's linear / resampler / pooling projectors) are served by the same adapter:
pre- and post-projector features are the projector module's own input and output.
"""

from __future__ import annotations

from typing import Any

from mmdiag.adapters.projector_lm import ProjectorLMAdapter


class LlavaAdapter(ProjectorLMAdapter):
    """Adapter for ``LlavaForConditionalGeneration`` and checkpoints that keep its module tree."""

    family = "llava"
    prompt_template = "USER: <image>\n{question} ASSISTANT:"

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        height, width = _processor_image_size(self.processor.image_processor, vision.image_size)
        return height // vision.patch_size, width // vision.patch_size

    def _projector_grid(self, n_tokens: int) -> tuple[int, int] | None:
        """LLaVA's own projector maps patch by patch, so its tokens keep the patch grid; other projectors
        declare their grid in ``config.mmdiag_token_grid`` (pooling) or have none (learned queries)."""
        from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

        declared = getattr(self.model.config, "mmdiag_token_grid", None)
        if declared is not None:
            rows, cols = int(declared[0]), int(declared[1])
        elif isinstance(self.projector_module(), LlavaMultiModalProjector):
            rows, cols = self.vision_grid()
        else:
            return None
        return (rows, cols) if n_tokens == rows * cols else None  # e.g. the "full" strategy's extra CLS


class TowerGridLlavaAdapter(LlavaAdapter):
    """A LLaVA-tree family whose tower always sees images of its own size (tiles, or a fixed resize) through a
    patch-by-patch projector: both stages sit on the tower's patch grid."""

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side, side

    def _projector_grid(self, n_tokens: int) -> tuple[int, int] | None:
        grid = self.vision_grid()
        return grid if n_tokens == grid[0] * grid[1] else None


def _processor_image_size(image_processor: Any, default: int) -> tuple[int, int]:
    """(height, width) of the pixel tensors the image processor produces."""
    crop = getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False) and crop:
        return int(crop["height"]), int(crop["width"])
    size = getattr(image_processor, "size", None) or {}
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if "shortest_edge" in size:
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    return default, default
