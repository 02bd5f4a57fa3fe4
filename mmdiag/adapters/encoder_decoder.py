"""Image-to-text models whose language model is an encoder-decoder (BLIP-2 / InstructBLIP with Flan-T5).

The processor puts the image (query) tokens and the prompt in the *encoder's* input; the answer is the
*decoder's* output, starting from ``decoder_start_token_id``. So:

* yes/no scores are the decoder's first-step distribution; a question changes the encoder's states of the image
  tokens (bidirectional attention), so no image prefix is shared between questions;
* ``lm_layers`` are the encoder's blocks (where the image tokens live: the spatial probe's LLM stages read the
  encoder's states at the image tokens, under the stage prompt);
* ``lm_attention_modules`` are the decoder's cross-attention modules: the attention probe reads which input
  tokens (image vs text) the answer attends to there, and the encoder's self-attention from text tokens to
  image tokens beside it (the report says which it reads);
* generation returns decoder tokens only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image

from mmdiag.adapters.types import PreparedBatch


class EncoderDecoderLM:
    """Mixin over a :class:`~mmdiag.adapters.generative.GenerativeAdapter` whose LLM is T5-style (put it first)."""

    is_encoder_decoder: ClassVar[bool] = True
    reuses_image_prefix: ClassVar[bool] = False  # the encoder reads image and question together, both ways
    attention_source: ClassVar[str] = (
        "T5 decoder cross-attention from the answer position over the encoder's "
        "image and text tokens; encoder self-attention from text to image tokens beside it"
    )

    def text_only_reason(self) -> str | None:
        return "a T5 language model is scored through its decoder: an image-free prompt is not supported yet"

    def _seq2seq(self) -> torch.nn.Module:
        return self.language_model_module()  # type: ignore[attr-defined]

    def lm_layers(self) -> list[torch.nn.Module]:
        return list(self._seq2seq().encoder.block)

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        return [block.layer[1].EncDecAttention for block in self._seq2seq().decoder.block]

    def language_model_config(self) -> Any:
        return self._seq2seq().config

    def decoder_start(self, rows: int) -> torch.Tensor:
        """[rows, 1] decoder start tokens (the first answer token is predicted there)."""
        start = self._seq2seq().config.decoder_start_token_id
        return torch.full((rows, 1), int(start), dtype=torch.long, device=self.device)  # type: ignore[attr-defined]

    @torch.no_grad()
    def forward(self, batch: PreparedBatch, **kwargs: Any) -> Any:
        if "decoder_input_ids" not in batch.inputs:
            kwargs.setdefault("decoder_input_ids", self.decoder_start(batch.input_ids.shape[0]))
        return self.model(**batch.inputs, **kwargs)  # type: ignore[attr-defined]

    def first_answer_logits(self, batch: PreparedBatch) -> torch.Tensor:
        return self.forward(batch).logits[:, 0]

    def scores_from_logits(self, logits: torch.Tensor, batch: PreparedBatch) -> Any:
        """P(yes), P(no) at the decoder's first step (``logits`` are the decoder's)."""
        return self._yes_no_from_last(logits[:, 0])  # type: ignore[attr-defined]

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 20) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(prompts), self.generate_rows):  # type: ignore[attr-defined]
            rows = slice(start, start + self.generate_rows)  # type: ignore[attr-defined]
            batch = self.prepare(list(images[rows]), list(prompts[rows]), padding_side="right")  # type: ignore[attr-defined]
            settings = {"max_new_tokens": max_new_tokens, "do_sample": False, **self.generation_kwargs}  # type: ignore[attr-defined]
            out = self.model.generate(**batch.inputs, **settings)  # type: ignore[attr-defined]
            answers += [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]  # type: ignore[attr-defined]
        return answers

    @contextlib.contextmanager
    def eager_attention(self) -> Iterator[None]:
        """Within the block T5's attention modules return their probabilities (encoder and decoder stacks hold
        their own config copies: every one is switched, and restored after)."""
        configs = {id(m.config): m.config for m in self._seq2seq().modules() if hasattr(m, "config")}
        configs[id(self._seq2seq().config)] = self._seq2seq().config
        previous = {key: config._attn_implementation for key, config in configs.items()}
        try:
            for config in configs.values():
                config._attn_implementation = "eager"
            yield
        finally:
            for key, config in configs.items():
                config._attn_implementation = previous[key]

    def llm_hidden_states(self, output: Any) -> Sequence[torch.Tensor]:
        """The encoder's states (where the image tokens live; under the prompt, which the encoder reads both ways)."""
        return output.language_model_outputs.encoder_hidden_states
