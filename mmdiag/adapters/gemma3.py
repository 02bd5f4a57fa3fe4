"""Gemma 3 (``Gemma3ForConditionalGeneration``): SigLIP tower -> avg-pool projector (the tower's patch grid pooled to
``mm_tokens_per_image`` tokens, RMS-normed, one matrix) -> Gemma 3 LM with sliding-window and full-attention layers.

Module tree (transformers 5): ``model.model.vision_tower`` (``SiglipVisionModel``),
``model.model.multi_modal_projector`` (``Gemma3MultiModalProjector``), ``model.model.language_model``
(``Gemma3TextModel``, ``.layers[i].self_attn``).

Token layout: the processor expands each ``<start_of_image>`` into ``\\n\\n<start_of_image>`` + ``<image_soft_token>`` x
``mm_tokens_per_image`` + ``<end_of_image>\\n\\n``; only the soft tokens are image tokens (``token_type_ids`` 1).
With pan-and-scan the image becomes "Here is the original image <view> and here are some crops to help you see better
<view> <view> ...": the whole image first, then its crops row-major, each a run of soft tokens of its own.

Attention: causal, except that the tokens of one run of soft tokens (one view) attend to each other both ways
(``token_type_ids`` -> ``get_block_sequence_ids_for_mask``: a new group at every run; a view never sees a later
view). Sliding layers AND their one-sided window (key > query - window) onto that, full layers do not. The image
block lies before the question, so image states never read the prompt: a cached image prefix is valid for every
question (``reuses_image_prefix``), but the shared packing mask is causal in the prefix and carries no window, so
questions are not packed (``packs_questions = False``: transformers applies a given 4D mask to every layer type, so
packing would make the image block causal and drop the window).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.llava import TowerGridLlavaAdapter
from mmdiag.adapters.projector_lm import grid_regions
from mmdiag.adapters.types import PreparedBatch

Frame = tuple[float, float, float, float]
_PAN_AND_SCAN_KEYS = (
    "do_pan_and_scan",
    "pan_and_scan_min_crop_size",
    "pan_and_scan_max_num_crops",
    "pan_and_scan_min_ratio_to_activate",
)


class Gemma3Adapter(TowerGridLlavaAdapter):
    """Adapter for ``Gemma3ForConditionalGeneration`` (Gemma 3 4B/12B/27B, MedGemma, ShieldGemma 2's tree)."""

    family = "gemma3"
    prompt_template = "<start_of_turn>user\n<start_of_image>{question}<end_of_turn>\n<start_of_turn>model\n"
    # image tokens attend bidirectionally within their own view only, and every view precedes the question
    image_tokens_read_the_prompt = False
    reuses_image_prefix = True
    # the packed 4D mask (mmdiag.adapters.packed_questions) is causal inside the prefix and has no sliding window;
    # transformers takes a 4D mask as is for every layer type, so packing would change the image block and the window
    packs_questions = False

    def __init__(self, model: torch.nn.Module, processor: Any, **kwargs: Any) -> None:
        super().__init__(model, processor, **kwargs)
        self._honour_saved_pan_and_scan()

    # -- processor -----------------------------------------------------------------------------
    def _honour_saved_pan_and_scan(self) -> None:
        """Gemma3Processor's class defaults (pan-and-scan off, crops from 256 px) override what the image processor
        saved; a checkpoint whose ``preprocessor_config.json`` sets them gets them (null keeps the defaults)."""
        image_processor = self.processor.image_processor
        defaults = dict(getattr(type(self.processor), "images_kwargs", {}) or {})
        saved = {
            k: getattr(image_processor, k) for k in _PAN_AND_SCAN_KEYS if getattr(image_processor, k, None) is not None
        }
        self.pan_and_scan = {**{k: v for k, v in defaults.items() if k in _PAN_AND_SCAN_KEYS}, **saved}
        if saved:
            self.processor.images_kwargs = {**defaults, **saved}

    def processor_images(self, images: Sequence[Image.Image]) -> list[Any]:
        return [[image] for image in images]  # Gemma3Processor reads a flat list as one prompt's images

    # -- geometry ------------------------------------------------------------------------------
    @property
    def tokens_per_side(self) -> int:
        return int(round(int(self.model.config.mm_tokens_per_image) ** 0.5))

    def _projector_grid(self, n_tokens: int) -> tuple[int, int] | None:
        side = self.tokens_per_side
        return (side, side) if n_tokens == side * side else None

    def token_grid(self) -> tuple[int, int] | None:
        return None  # one view, or a view and its crops: placed by token_regions

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """One view per image (no crops): the whole image at the tower's size, for the feature stages."""
        encoded = self.processor.image_processor(images=list(images), do_pan_and_scan=False, return_tensors="pt")
        return {"pixel_values": torch.as_tensor(encoded["pixel_values"]).to(self.device, self.dtype)}

    def view_frames(self, image: Image.Image) -> list[Frame]:
        """The part of ``image`` each view shows, in prompt order: the whole image, then the pan-and-scan crops
        (traced through the image processor's own cropping on a tensor of pixel coordinates)."""
        frames: list[Frame] = [(0.0, 0.0, 1.0, 1.0)]
        settings = self.pan_and_scan
        if not settings.get("do_pan_and_scan"):
            return frames
        height, width = image.height, image.width
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        coords = torch.stack([rows, cols]).float()[None]  # [1, 2, H, W]
        cropper = getattr(self.processor.image_processor, "pan_and_scan_batched", None)
        if cropper is None:  # another image-processor backend: no frames rather than guessed ones
            return frames
        crops = cropper(
            coords,
            pan_and_scan_min_crop_size=settings["pan_and_scan_min_crop_size"],
            pan_and_scan_max_num_crops=settings["pan_and_scan_max_num_crops"],
            pan_and_scan_min_ratio_to_activate=settings["pan_and_scan_min_ratio_to_activate"],
        )
        for crop in crops:
            r, c = crop[0, 0], crop[0, 1]
            frames.append(
                (
                    float(r.min()) / height,
                    float(c.min()) / width,
                    float(r.max() + 1) / height,
                    float(c.max() + 1) / width,
                )
            )
        return frames

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        side = self.tokens_per_side
        out = []
        for row, image in enumerate(images):
            regions = np.concatenate([grid_regions(side, side, frame) for frame in self.view_frames(image)])
            if len(regions) != sum(end - start for start, end in batch.image_spans[row]):
                return None  # a layout this adapter does not understand: no regions rather than wrong ones
            out.append(regions)
        return out

    def pixel_rows(self, batch: PreparedBatch) -> list[slice]:
        """Each row's views in ``pixel_values`` (all rows' views concatenated): image tokens / tokens per view."""
        per_view = int(self.model.config.mm_tokens_per_image)
        views = [sum(end - start for start, end in spans) // per_view for spans in batch.image_spans]
        bounds = np.concatenate([[0], np.cumsum(views)]).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    # -- attention -----------------------------------------------------------------------------
    def image_blocks(self, batch: PreparedBatch) -> torch.Tensor | None:
        """[batch, tokens] long: the bidirectional group of each image token (one per view, numbered from 0 in each
        row), -1 for text; exactly transformers' ``get_block_sequence_ids_for_mask`` of the token types."""
        types = batch.inputs.get("token_type_ids")
        if types is None:
            return None
        try:
            from transformers.models.gemma3.modeling_gemma3 import get_block_sequence_ids_for_mask
        except ImportError:  # releases that built the mask otherwise: the same rule, here
            get_block_sequence_ids_for_mask = _block_ids
        return get_block_sequence_ids_for_mask(types).masked_fill(batch.attention_mask == 0, -1)

    def bidirectional_prefix(self, batch: PreparedBatch) -> torch.Tensor | None:
        """The image blocks, as :class:`~mmdiag.adapters.attention_rows.AttentionRows` takes them: each view's
        tokens attend to each other both ways, never to a later view's."""
        return self.image_blocks(batch)


def _block_ids(token_type_ids: torch.Tensor) -> torch.Tensor:
    """A new group at every run of image tokens (type 1), numbered from 0 in each row; -1 for text."""
    image = token_type_ids == 1
    starts = image & ~torch.nn.functional.pad(image, (1, 0))[:, :-1]
    return torch.where(image, torch.cumsum(starts.long(), dim=1) - 1, -1)
