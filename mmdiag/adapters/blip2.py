"""BLIP-2 family: vision tower -> Q-Former (learned queries, cross-attention) -> language projection -> LLM.

Module tree (transformers 5): ``vision_model``, ``query_tokens``, ``qformer``, ``language_projection``,
``language_model`` (decoder-only: OPT, Llama...). The LLM sees ``num_query_tokens`` image tokens,
placed first by the processor; they form no patch grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io, hooks
from mmdiag.adapters.encoder_decoder import EncoderDecoderLM
from mmdiag.adapters.generative import GenerativeAdapter, image_token_spans
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.llava import _processor_image_size
from mmdiag.adapters.lm_layers import decoder_layers, self_attention
from mmdiag.errors import CapabilityError, ProcessorMismatchError


class Blip2Adapter(GenerativeAdapter):
    """Adapter for ``Blip2ForConditionalGeneration`` with a decoder-only language model."""

    family = "blip2"
    prompt_template = "Question: {question} Answer:"

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> Blip2Adapter:
        from transformers import Blip2ForConditionalGeneration

        options = options or LoadOptions()
        processor = load_hf_processor(path, options)
        model = load_hf_model(Blip2ForConditionalGeneration, path, options)
        return cls.wrap(model, processor, source=path, **kwargs)

    @classmethod
    def wrap(cls, model: torch.nn.Module, processor: Any, **kwargs: Any) -> Blip2Adapter:
        """The decoder-only adapter, or its encoder-decoder variant when the LLM is T5 (Flan-T5 checkpoints)."""
        if not model.config.use_decoder_only_language_model and not getattr(cls, "is_encoder_decoder", False):
            return cls.with_t5(model, processor, **kwargs)
        return cls(model, processor, **kwargs)

    @classmethod
    def with_t5(cls, model: torch.nn.Module, processor: Any, **kwargs: Any) -> Blip2Adapter:
        return Blip2T5Adapter(model, processor, **kwargs)

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    def vision_encoder_module(self) -> torch.nn.Module:
        return self.model.vision_model

    def projector_module(self) -> torch.nn.Module:
        return self.model.language_projection

    def language_model_module(self) -> torch.nn.Module:
        return self.model.language_model

    def language_model_config(self) -> Any:
        return self.lm_attention_modules()[0].config

    @torch.no_grad()
    def text_only_forward(self, batch: Any) -> Any:
        """The language model alone on text inputs: the BLIP-2 model itself requires pixels."""
        with self.edited(batch):
            return self.model.language_model(**batch.inputs)

    def lm_layers(self) -> list[torch.nn.Module]:
        return decoder_layers(self.model.language_model)

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        return [self_attention(layer) for layer in self.lm_layers()]

    def format_prompt(self, question: str) -> str:
        return self.plain_prompt(question)

    def _prefix_cache(self, inputs: dict[str, torch.Tensor]) -> Any:
        return self.model(**inputs, use_cache=True).language_model_outputs.cache

    def _continue_from_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: Any) -> torch.Tensor:
        # BLIP-2's forward always re-encodes pixels; the cached prefix already holds the query tokens
        return self.model.language_model(
            input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True
        ).logits

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        height, width = _processor_image_size(self.processor.image_processor, vision.image_size)
        return height // vision.patch_size, width // vision.patch_size

    def _image_feature_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """What ``get_image_features`` takes for ``images`` (InstructBLIP adds the Q-Former's instruction)."""
        return {"pixel_values": self.pixel_values(images)}

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        modules = {"qformer": self.model.qformer, "projector": self.model.language_projection}
        with capture_io(modules) as captured:
            self.model.get_image_features(**self._image_feature_inputs(images))
        vision = captured.kwargs["qformer"]["encoder_hidden_states"][:, 1:]  # drop CLS: patches only
        queries = int(self.model.config.num_query_tokens)  # the Q-Former's outputs at its queries (not any text)
        return [
            StageFeatures("vision_encoder", vision, self.vision_grid()),
            StageFeatures("qformer", captured.output_tensor("qformer")[:, :queries], None),
            StageFeatures("projector", captured.output_tensor("projector"), None),
        ]

    @torch.no_grad()
    def qformer_patch_attention(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[batch, cross-attention layers, n_patches]: the Q-Former's cross-attention over patches, mean
        over heads and queries (the CLS key's share is left out, so rows sum to 1 - CLS share)."""
        config = self.model.qformer.config
        cross = [
            layer.crossattention.attention
            for layer in self.model.qformer.encoder.layer
            if getattr(layer, "has_cross_attention", False)
        ]
        kept: list[torch.Tensor] = []

        def keep(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            kept.append(output[1][:, :, :, 1:].float().mean(dim=(1, 2)))  # [batch, patches]

        inputs = self._image_feature_inputs(images)
        previous = config._attn_implementation
        config._attn_implementation = "eager"
        try:
            with hooks([(m, keep) for m in cross]):
                self.model.get_image_features(**inputs)
        finally:
            config._attn_implementation = previous
        return torch.stack(kept, dim=1)

    def validate(self) -> None:
        if self.model.config.use_decoder_only_language_model == bool(getattr(self, "is_encoder_decoder", False)):
            raise CapabilityError(
                f"{type(self).__name__} does not fit this checkpoint's language model: load it with "
                "load_adapter(), which picks the decoder-only or T5 variant from its config"
            )
        vocab = self.model.get_input_embeddings().num_embeddings
        if self.image_token_id >= vocab:
            raise ProcessorMismatchError(
                f"image token id {self.image_token_id} is outside the model's vocabulary ({vocab}): "
                "load the processor saved with this model"
            )
        encoded = self.processor(
            images=[Image.new("RGB", (32, 32))], text=[self.format_prompt("?")], return_tensors="pt"
        )
        n_tokens = sum(e - s for s, e in image_token_spans(encoded["input_ids"], self.image_token_id)[0])
        n_queries = int(self.model.config.num_query_tokens)
        if n_tokens != n_queries:
            raise ProcessorMismatchError(
                f"the processor inserts {n_tokens} image tokens but the model has {n_queries} Q-Former queries: "
                "use the processor saved with this model (num_query_tokens must match)"
            )


class Blip2T5Adapter(EncoderDecoderLM, Blip2Adapter):
    """BLIP-2 with a T5 language model (``Salesforce/blip2-flan-t5-xl`` and the like)."""

    family = "blip2_t5"
