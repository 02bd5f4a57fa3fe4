"""The common shape of today's HF image-text-to-text models: vision tower -> connector -> decoder LM.

LLaVA, LLaVA-NeXT, LLaVA-OneVision, PaliGemma, InternVL, Qwen2-VL and their successors, Idefics3/SmolVLM, Mistral 3,
Gemma 3, Aya Vision, GLM-4V and Llama 4 all keep, in transformers 5, a vision module, a connector ("projector") and the
language model, with ``get_image_features`` running the first two. The three modules' paths come from the family's
declaration (:mod:`mmdiag.families`); a family adapter gives the keys of the processor's image inputs and how its image
tokens sit on the image (:meth:`token_regions`); everything else (loading, prompting, stage capture, the
processor/model token-count check) is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.generative import GenerativeAdapter, image_token_spans
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.lm_layers import decoder_layers, self_attention
from mmdiag.adapters.types import PreparedBatch
from mmdiag.errors import ConfigError, ProcessorMismatchError

PROBE_IMAGE_SIZE = 32  # the validation image's side: small, and square as the scenes are


class ProjectorLMAdapter(GenerativeAdapter):
    """Base of the vision-tower / connector / decoder-LM families (see the module docstring)."""

    image_input_keys: ClassVar[tuple[str, ...]] = ("pixel_values",)  # what get_image_features takes
    uses_chat_template = True
    packs_questions = True  # decoder LMs with position ids and custom 4D masks (tested per family)
    # extra variables for the chat template (Qwen3.5: {"enable_thinking": False}, so the prompt ends after an empty
    # think block and the first answer token is the answer)
    chat_template_kwargs: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> ProjectorLMAdapter:
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
        config = self.model.config
        value = getattr(config, "image_token_id", None)
        return int(value if value is not None else config.image_token_index)

    def _part(self, name: str) -> torch.nn.Module:
        """A canonical part at the path the family's declaration gives (:func:`mmdiag.families.module_paths`)."""
        from mmdiag.families import module_paths

        path = module_paths(self.architecture)[name]
        try:
            return self.model.get_submodule(path)
        except AttributeError as err:
            raise ConfigError(
                f"{self.architecture} has no module {path} (the {name}): the checkpoint's tree differs from its "
                "family's declaration; declare the family's modules for this tree"
            ) from err

    def vision_encoder_module(self) -> torch.nn.Module:
        return self._part("vision_encoder")

    def projector_module(self) -> torch.nn.Module:
        return self._part("projector")

    def language_model_module(self) -> torch.nn.Module:
        return self._part("language_model")

    def language_model_config(self) -> Any:
        return self.lm_attention_modules()[0].config

    def lm_layers(self) -> list[torch.nn.Module]:
        return decoder_layers(self.language_model_module())

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        return [self_attention(layer) for layer in self.lm_layers()]

    # -- prompting ---------------------------------------------------------------------------
    def format_prompt(self, question: str) -> str:
        if getattr(self.processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            if self.system_prompt:
                conversation.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
            try:
                prompt = self.processor.apply_chat_template(
                    conversation, add_generation_prompt=True, **self.chat_template_kwargs
                )
            except Exception as err:  # noqa: BLE001 - a user's template (jinja2 errors of every kind): one line
                raise ConfigError(
                    f"the chat template cannot render this prompt ({err.__class__.__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}): fix --chat-template, or drop "
                    "--system-prompt if the template has no system turn"
                ) from err
            return self._without_template_bos(prompt)
        return self.plain_prompt(question)

    def _without_template_bos(self, prompt: str) -> str:
        """The template's text without a leading BOS that the tokenizer adds again (Gemma's and Cohere's templates
        write it, and the processor tokenises with special tokens: two BOS would change every answer)."""
        bos = self.tokenizer.bos_token
        if bos and prompt.startswith(bos):
            ids = self.tokenizer("a")["input_ids"]
            if ids and ids[0] == self.tokenizer.bos_token_id:
                return prompt[len(bos) :]
        return prompt

    def prepare(
        self, images: Sequence[Image.Image], questions: Sequence[str], padding_side: str = "right"
    ) -> PreparedBatch:
        batch = super().prepare(images, questions, padding_side)
        if batch.token_grid is None:
            batch.token_regions = self.token_regions(batch, images)
        return batch

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        """Per row, [n_image_tokens, 4] boxes (y0, x0, y1, x1, fractions of the image) of the image tokens in
        span order; NaN rows for tokens that show no region (row separators, a thumbnail's marker). ``None``
        when the family's tokens have no place on the image (learned queries)."""
        return None

    # -- features ----------------------------------------------------------------------------
    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The processor's image inputs for ``images``, as ``get_image_features`` takes them."""
        encoded = self.processor.image_processor(images=list(images), return_tensors="pt")
        out = {}
        for key in self.image_input_keys:
            if key in encoded:
                value = torch.as_tensor(encoded[key]).to(self.device)
                out[key] = value.to(self.dtype) if value.is_floating_point() else value
        return out

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_inputs(images)["pixel_values"]

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        inputs = self.image_inputs(images)
        with capture_io({"projector": self.projector_module()}) as captured:
            self._core.get_image_features(**inputs)
        return self.stages_from_projector(
            captured.first_input("projector"), captured.output_tensor("projector"), inputs, len(images)
        )

    def stages_from_projector(
        self, pre: torch.Tensor, post: torch.Tensor, inputs: dict[str, torch.Tensor], n_images: int
    ) -> list[StageFeatures]:
        """``vision_encoder`` and ``projector`` stages from what the connector received and returned."""
        grid = self.vision_grid()
        if pre.shape[1] == grid[0] * grid[1] + 1:  # "full" strategy keeps CLS first; probes want the patches
            pre = pre[:, 1:]
        return [
            StageFeatures("vision_encoder", pre, grid),
            StageFeatures("projector", post, self._projector_grid(post.shape[1])),
        ]

    def _projector_grid(self, n_tokens: int) -> tuple[int, int] | None:
        return None

    def token_grid(self) -> tuple[int, int] | None:
        return self.projected_tokens([Image.new("RGB", (8, 8))]).grid

    # -- checks ------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> None:
        vocab = self.model.get_input_embeddings().num_embeddings
        if self.image_token_id >= vocab:
            raise ProcessorMismatchError(
                f"image token id {self.image_token_id} is outside the model's vocabulary ({vocab}): "
                "the tokenizer does not belong to this model; load the processor saved with it"
            )
        image = Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE))
        encoded = self.processor(images=[image], text=[self.format_prompt("?")], return_tensors="pt")
        spans = image_token_spans(encoded["input_ids"], self.image_token_id)[0]
        n_tokens = sum(end - start for start, end in spans)
        inputs = {k: v.to(self.device) for k, v in encoded.items() if k in self.image_input_keys}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        n_features = _count_tokens(self._core.get_image_features(**inputs))
        if n_tokens != n_features:
            raise ProcessorMismatchError(
                f"the processor expands the image into {n_tokens} tokens but the model makes {n_features} image "
                "features (patch size, image size or feature strategy differ): use the processor saved with this model"
            )


def _count_tokens(features: Any) -> int:
    """Image tokens in what ``get_image_features`` returns (a tensor, a list per image, or an output object)."""
    pooled = getattr(features, "pooler_output", None)
    value = pooled if pooled is not None else getattr(features, "last_hidden_state", features)
    if isinstance(value, torch.Tensor):
        return int(value.shape[0] * value.shape[1]) if value.dim() == 3 else int(value.shape[0])
    return sum(int(v.shape[-2]) if v.dim() >= 2 else 1 for v in value)


def grid_regions(rows: int, cols: int, frame: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> np.ndarray:
    """[rows * cols, 4] row-major cell boxes of a ``rows`` x ``cols`` grid laid over ``frame`` (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = frame
    ys = np.linspace(y0, y1, rows + 1)
    xs = np.linspace(x0, x1, cols + 1)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([ys[r], xs[c], ys[r + 1], xs[c + 1]], axis=-1).reshape(-1, 4)
