"""Aya Vision (``AyaVisionForConditionalGeneration``): SigLIP tower -> pixel-shuffle projector (2x2 patches folded into
channels, LayerNorm, SwiGLU MLP) -> Cohere2 LM, on GotOcr2 tiles plus a global thumbnail.

Module tree (transformers 5): ``model.model.vision_tower`` (``SiglipVisionModel``, no CLS: strategy "full"),
``model.model.multi_modal_projector`` (``AyaVisionMultiModalProjector``, its own ``pixel_shuffle``),
``model.model.language_model`` (``Cohere2Model``, ``.layers[i].self_attn``).

Token layout: ``<image>`` becomes ``<|START_OF_IMG|>`` then, for each tile when there are several, ``TILE_i`` and
``<|IMG_PATCH|>`` x tokens-per-view, then ``TILE_GLOBAL`` and the thumbnail's ``<|IMG_PATCH|>`` tokens, then
``<|END_OF_IMG|>``. Only ``<|IMG_PATCH|>`` tokens carry image features (one span per view). Tiles come from the same
GotOcr2 canvas choice as InternVL's (``get_optimal_tiled_canvas``), row-major, the thumbnail last: InternVL's
``view_frames`` applies unchanged and each token's region is its 2x2 block traced through Aya's own ``pixel_shuffle``.
Unlike InternVL's, the projector shuffles inside its forward, so its input is the tower's row-major patch grid; the
feature stages read each image's whole-image view (the thumbnail when there are tiles).

Attention: plain causal (Cohere2 alternates sliding-window layers with interleaved RoPE and full layers with no
position embedding). Image tokens precede the question: a shared image prefix is valid, and questions are packed
(the packed mask has no sliding window, so a batch whose prompts exceed the window continues a cached prefix instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.internvl import InternVLAdapter
from mmdiag.adapters.types import PreparedBatch


class AyaVisionAdapter(InternVLAdapter):
    """Adapter for ``AyaVisionForConditionalGeneration`` (Aya Vision 8B / 32B)."""

    family = "aya_vision"
    prompt_template = (
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><image>{question}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    )
    image_tokens_read_the_prompt = False  # causal LM, image before the question
    reuses_image_prefix = True  # 1-D positions: a cached prefix is continued by text alone
    packs_questions = True  # position ids and a 4D mask are honoured (inside the sliding window: _fits_windows)

    # -- views ---------------------------------------------------------------------------------
    @property
    def tokens_per_view(self) -> int:
        return (int(self.processor.img_size) // int(self.processor.patch_size)) ** 2

    def _crops(self) -> bool:
        """Whether the processor tiles: AyaVisionProcessor passes ``crop_to_patches=True`` over the image processor's
        own setting."""
        default = (getattr(type(self.processor), "images_kwargs", None) or {}).get("crop_to_patches")
        own = getattr(self.processor, "images_kwargs", {}) or {}
        value = own.get("crop_to_patches", default)
        return bool(value if value is not None else getattr(self.processor.image_processor, "crop_to_patches", False))

    def pixel_rows(self, batch: PreparedBatch) -> list[slice]:
        per_view = self.tokens_per_view
        views = [sum(end - start for start, end in spans) // per_view for spans in batch.image_spans]
        bounds = np.concatenate([[0], np.cumsum(views)]).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def shuffle(self, coords: torch.Tensor) -> torch.Tensor:
        return self.projector_module().pixel_shuffle(coords.reshape(1, -1, coords.shape[-1]))

    def view_frames(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        image_processor = self.processor.image_processor
        previous = getattr(image_processor, "crop_to_patches", None)
        image_processor.crop_to_patches = self._crops()  # InternVL's frames read the image processor's flag
        try:
            return super().view_frames(image)
        finally:
            image_processor.crop_to_patches = previous

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The views the processor would make (tiles + thumbnail), for the feature stages."""
        encoded = self.processor.image_processor(
            images=list(images), crop_to_patches=self._crops(), return_tensors="pt"
        )
        return {"pixel_values": torch.as_tensor(encoded["pixel_values"]).to(self.device, self.dtype)}

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Each image's whole-image view (the thumbnail, last, when there are tiles; else its one view): the tower's
        patches as the projector receives them (row-major; Aya shuffles inside its projector) and the projector's
        tokens (one per 2x2 block, row-major: a grid)."""
        inputs = self.image_inputs(images)
        views = [len(self.view_frames(image)) for image in images]
        whole = torch.as_tensor(np.cumsum(views) - 1, device=self.device)
        with capture_io({"projector": self.projector_module()}) as captured:
            self._core.get_image_features(**inputs)
        patches = captured.first_input("projector")[whole]  # [images, patches, dim]
        tokens = captured.output_tensor("projector")[whole]
        tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
        side = int(round(tokens.shape[1] ** 0.5))
        return [
            StageFeatures("vision_encoder", patches, self.vision_grid()),
            StageFeatures("projector", tokens, (side, side) if side * side == tokens.shape[1] else None),
        ]
