"""Llama 4 (``Llama4ForConditionalGeneration``: Scout / Maverick): tiles -> ViT (unfold "conv" + CLS, 2-D RoPE) ->
pixel shuffle (2x2 patches folded into channels) + MLP, inside the vision model -> linear projector -> a Llama 4 LM
(MoE feed-forward, chunked attention on RoPE layers, global attention on NoPE layers).

Module tree (transformers 5): *no* ``model.model`` core: ``model.vision_model`` (``.vision_adapter`` is the pixel
shuffle + MLP), ``model.multi_modal_projector`` (``linear_1``: its output is the image tokens),
``model.language_model`` (``Llama4ForCausalLM``; layers at ``.model.layers``), ``model.get_image_features``.

Processor (``Llama4Processor`` + ``Llama4ImageProcessor``): the image is resized without distortion to fit the best
tile canvas (at most ``max_patches`` tiles of ``size``; upscaling limited to one tile side), padded right/bottom to
the canvas, cut into row-major tiles, and, when there is more than one tile, followed by a global view (the whole image
resized to one tile, distorted). Tokens: ``<|image_start|>`` [per tile row: the tiles' ``<|patch|>`` runs split by
``<|tile_x_separator|>``, then ``<|tile_y_separator|>``] ``<|image|>`` [the global view's ``<|patch|>`` run]
``<|image_end|>``; a one-tile image is ``<|image_start|><|image|>`` + its run + ``<|image_end|>``. The features
replace ``<|patch|>`` (``config.image_token_index``), not ``<|image|>`` (the processor's placeholder, left as a
marker), so spans are the ``<|patch|>`` runs. Each token's region is its 2x2 patch block in its tile, mapped through
the resize + pad (tokens wholly in the padding: NaN; the global view: the whole image).

Attention (layer types from the config): RoPE layers (``no_rope_layers[i] == 1``) use chunked causal attention
(``attention_chunk_size``, chunks counted from each row's first real token) and an L2 ``qk_norm`` after RoPE; NoPE
layers attend globally with queries scaled by ``1 + attn_scale * log1p(floor((i + 1) / floor_scale))`` (i: the
token's index in the sequence). The streamed rows follow all of it (:mod:`mmdiag.adapters.attention_rows`: complex
RoPE, NoPE, qk_norm after RoPE, temperature, chunk mask).

Decisions: ``packs_questions = False``: a custom 4D mask replaces the chunked mask on the chunked layers (transformers
returns a 4D ``attention_mask`` as given), so packed suffixes would attend across chunk boundaries;
``reuses_image_prefix = True``: positions are plain 1-D and the hybrid cache (sliding-window layers of the chunk
size for chunked layers, full layers for NoPE) continues a cached image prefix exactly, gathered per question with
``batch_select_indices``; the image tokens do not read the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.llava import LlavaAdapter
from mmdiag.adapters.pixel_shuffle import Frame, PixelShuffleViews
from mmdiag.adapters.types import PreparedBatch


class Llama4Adapter(PixelShuffleViews, LlavaAdapter):
    """Adapter for ``Llama4ForConditionalGeneration``."""

    family = "llama4"
    prompt_template = (
        "<|header_start|>user<|header_end|>\n\n<|image|>{question}<|eot|><|header_start|>assistant<|header_end|>\n\n"
    )
    packs_questions = False  # a 4D mask would replace the chunked layers' chunk mask
    reuses_image_prefix = True  # 1-D positions; the chunked (sliding) and full caches continue exactly

    # -- module tree -------------------------------------------------------------------------
    @property
    def _core(self) -> torch.nn.Module:
        return self.model  # vision_model / multi_modal_projector / language_model hang off the top-level model

    def shuffle_module(self) -> torch.nn.Module:
        """The pixel shuffle + MLP inside the vision model (its input is the ``vision_encoder`` stage)."""
        return self.model.vision_model.vision_adapter

    # -- geometry ----------------------------------------------------------------------------
    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        return int(vision.image_size) // int(vision.patch_size), int(vision.image_size) // int(vision.patch_size)

    def token_grid(self) -> tuple[int, int] | None:
        return None  # tiles + global view, pixel-shuffled: placed by token_regions

    def tokens_per_view(self) -> int:
        rows, cols = self.vision_grid()
        ratio = float(self.model.config.vision_config.pixel_shuffle_ratio)
        return int(round(rows * ratio)) * int(round(cols * ratio))

    def shuffle(self, coords: torch.Tensor) -> torch.Tensor:
        from transformers.models.llama4.modeling_llama4 import pixel_shuffle

        batch, rows, cols, channels = coords.shape
        ratio = float(self.model.config.vision_config.pixel_shuffle_ratio)
        return pixel_shuffle(coords.reshape(batch, rows * cols, channels), ratio)

    def canvas(self, image: Image.Image) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(tiles (rows, cols), canvas (h, w), resized image (h, w)) as ``Llama4ImageProcessor`` lays ``image`` out."""
        from transformers.models.llama4.image_processing_llama4 import (
            find_supported_resolutions,
            get_best_fit,
            get_max_res_without_distortion,
        )

        processor = self.processor.image_processor
        kwargs = processor._merge_and_standardize_kwargs()
        size = kwargs["size"]
        possible = torch.as_tensor(find_supported_resolutions(max_num_chunks=kwargs["max_patches"], patch_size=size))
        height, width = image.height, image.width
        target = [int(v) for v in get_best_fit((height, width), possible, kwargs["resize_to_max_canvas"])]
        limit = target
        if not kwargs["resize_to_max_canvas"]:  # upscaling limited to one tile side, as the processor does
            limit = [min(max(height, size.height), target[0]), min(max(width, size.height), target[1])]
        new_h, new_w = get_max_res_without_distortion((height, width), limit)
        tiles = (target[0] // size.height, target[1] // size.width)
        return tiles, (target[0], target[1]), (max(new_h, 1), max(new_w, 1))

    def view_frames(self, image: Image.Image) -> list[Frame]:
        """Each view's frame in image fractions, in token order: tiles row-major (frames past 1 where a tile shows
        the canvas padding), then the global view when there are several tiles."""
        (rows, cols), (canvas_h, canvas_w), (new_h, new_w) = self.canvas(image)
        sy, sx = canvas_h / new_h, canvas_w / new_w  # canvas fractions -> image fractions
        frames = [
            (r / rows * sy, c / cols * sx, (r + 1) / rows * sy, (c + 1) / cols * sx)
            for r in range(rows)
            for c in range(cols)
        ]
        return frames + [(0.0, 0.0, 1.0, 1.0)] if len(frames) > 1 else frames

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        """The mixin's regions, cut to the image: a token wholly in the padding shows no region (NaN)."""
        out = super().token_regions(batch, images)
        if out is None:
            return None
        clipped = []
        for regions in out:
            outside = (regions[:, 0] >= 1 - 1e-9) | (regions[:, 1] >= 1 - 1e-9)
            regions = np.clip(regions, 0.0, 1.0)
            regions[outside] = np.nan
            clipped.append(regions)
        return clipped

    def pixel_rows(self, batch: PreparedBatch) -> list[slice]:
        """Each row's views in ``pixel_values`` (all rows' views concatenated): its image tokens / tokens per view."""
        per_view = self.tokens_per_view()
        views = [sum(end - start for start, end in spans) // per_view for spans in batch.image_spans]
        bounds = np.concatenate([[0], np.cumsum(views)]).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    # -- features ----------------------------------------------------------------------------
    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Each image's *last* view (the global view of a tiled image, else its one tile: the whole image either
        way): the tower's patches as the pixel shuffle receives them (CLS dropped, row-major) and the projector's
        tokens (one per 2x2 block, row-major)."""
        inputs = self.image_inputs(images)
        views = np.cumsum([len(self.view_frames(image)) for image in images])
        last = torch.as_tensor(views - 1, device=self.device)
        with capture_io({"shuffle": self.shuffle_module(), "projector": self.projector_module()}) as captured:
            self.model.get_image_features(**inputs)
        patches = captured.first_input("shuffle")[last]
        tokens = captured.output_tensor("projector")[last]
        side = int(round(tokens.shape[1] ** 0.5))
        return [
            StageFeatures("vision_encoder", patches, self.vision_grid()),
            StageFeatures("projector", tokens, (side, side) if side * side == tokens.shape[1] else None),
        ]
