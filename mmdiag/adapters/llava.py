"""LLaVA family: CLIP-style vision tower -> multi-modal projector -> causal LM.

Module tree (transformers 5): ``model.model.vision_tower``, ``model.model.multi_modal_projector``,
``model.model.language_model`` (a decoder stack), ``model.lm_head``. Projector variants that keep this
tree (the reference zoo's linear / resampler / pooling projectors) are served by the same adapter:
pre- and post-projector features are the projector module's own input and output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.generative import GenerativeAdapter, image_token_spans
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.lm_layers import decoder_layers, self_attention
from mmdiag.errors import ConfigError, ProcessorMismatchError


class LlavaAdapter(GenerativeAdapter):
    """Adapter for ``LlavaForConditionalGeneration`` and checkpoints that keep its module tree."""

    family = "llava"
    architectures = ("LlavaForConditionalGeneration",)
    prompt_template = "USER: <image>\n{question} ASSISTANT:"
    uses_chat_template = True

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> LlavaAdapter:
        from transformers import AutoModelForImageTextToText

        options = options or LoadOptions()
        processor = load_hf_processor(path, options)
        model = load_hf_model(AutoModelForImageTextToText, path, options)
        return cls(model, processor, source=path, **kwargs)

    # -- module tree -------------------------------------------------------------------------
    @property
    def _core(self) -> torch.nn.Module:
        return self.model.model

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    def vision_encoder_module(self) -> torch.nn.Module:
        return self._core.vision_tower

    def projector_module(self) -> torch.nn.Module:
        return self._core.multi_modal_projector

    def language_model_module(self) -> torch.nn.Module:
        return self._core.language_model

    def language_model_config(self) -> Any:
        return self.lm_attention_modules()[0].config

    def lm_layers(self) -> list[torch.nn.Module]:
        return decoder_layers(self._core.language_model)

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        return [self_attention(layer) for layer in self.lm_layers()]

    def format_prompt(self, question: str) -> str:
        if getattr(self.processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            if self.system_prompt:
                conversation.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
            try:
                return self.processor.apply_chat_template(conversation, add_generation_prompt=True)
            except Exception as err:  # noqa: BLE001 - a user's template (jinja2 errors of every kind): one line
                raise ConfigError(f"the chat template cannot render this prompt ({err.__class__.__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}): fix --chat-template, or drop "
                                  "--system-prompt if the template has no system turn") from err
        return self.plain_prompt(question)

    # -- geometry ----------------------------------------------------------------------------
    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        height, width = _processor_image_size(self.processor.image_processor, vision.image_size)
        return height // vision.patch_size, width // vision.patch_size

    def token_grid(self) -> tuple[int, int] | None:
        return self.projected_tokens([Image.new("RGB", (8, 8))]).grid

    def _projector_grid(self, n_tokens: int) -> tuple[int, int] | None:
        """LLaVA's own projector maps patch by patch, so its tokens keep the patch grid; other projectors
        declare their grid in ``config.mmdiag_token_grid`` (pooling) or have none (learned queries)."""
        from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

        declared = getattr(self.model.config, "mmdiag_token_grid", None)
        if declared is not None:
            rows, cols = int(declared[0]), int(declared[1])
        elif isinstance(self._core.multi_modal_projector, LlavaMultiModalProjector):
            rows, cols = self.vision_grid()
        else:
            return None
        return (rows, cols) if n_tokens == rows * cols else None  # e.g. the "full" strategy's extra CLS

    def _n_image_tokens(self) -> int:
        return int(self.projected_tokens([Image.new("RGB", (8, 8))]).tokens.shape[1])

    # -- features ----------------------------------------------------------------------------
    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        with capture_io({"projector": self._core.multi_modal_projector}) as captured:
            self._core.get_image_features(pixel_values=self.pixel_values(images))
        pre = captured.first_input("projector")
        post = captured.output_tensor("projector")
        grid = self.vision_grid()
        if pre.shape[1] == grid[0] * grid[1] + 1:  # "full" strategy keeps CLS first; probes want the patches
            pre = pre[:, 1:]
        return [StageFeatures("vision_encoder", pre, grid), StageFeatures("projector", post, self._projector_grid(post.shape[1]))]

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        vocab = self.model.get_input_embeddings().num_embeddings
        if self.image_token_id >= vocab:
            raise ProcessorMismatchError(
                f"image token id {self.image_token_id} is outside the model's vocabulary ({vocab}): "
                "the tokenizer does not belong to this model; load the processor saved with it"
            )
        image = Image.new("RGB", (32, 32))
        encoded = self.processor(images=[image], text=[self.format_prompt("?")], return_tensors="pt")
        spans = image_token_spans(encoded["input_ids"], self.image_token_id)[0]
        n_tokens = sum(end - start for start, end in spans)
        n_features = self._n_image_tokens()
        if n_tokens != n_features:
            raise ProcessorMismatchError(
                f"the processor expands the image into {n_tokens} tokens but the model makes {n_features} image "
                "features (patch size, image size or vision_feature_select_strategy differ): use the processor "
                "saved with this model"
            )


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
