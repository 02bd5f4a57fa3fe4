"""PaliGemma: SigLIP tower -> linear projector -> Gemma, with *prefix-LM* attention.

Module tree as LLaVA's (``vision_tower``, ``multi_modal_projector``, ``language_model``). The processor writes
``<image> x image_seq_length``, then BOS, the prompt and a newline; image and prompt form the prefix, attended
bidirectionally. So image-token states depend on the question: no image prefix is shared between questions
(each is scored in full), and the LLM-layer image states the spatial probe reads are those under its fixed prompt.
The last prompt token's attention row, which the attention probe reads, covers the whole prefix either way.
"""

from __future__ import annotations

import torch

from mmdiag.adapters.llava import TowerGridLlavaAdapter
from mmdiag.adapters.types import PreparedBatch


class PaliGemmaAdapter(TowerGridLlavaAdapter):
    """Adapter for ``PaliGemmaForConditionalGeneration`` (PaliGemma 1 and 2)."""

    family = "paligemma"
    prompt_template = "<image>answer en {question}"
    uses_chat_template = False
    image_tokens_read_the_prompt = True  # prefix-LM: image tokens attend to the prompt

    def format_prompt(self, question: str) -> str:
        return self.plain_prompt(question)  # the processor adds the image tokens, BOS and the newline

    def bidirectional_prefix(self, batch: PreparedBatch) -> torch.Tensor | None:
        """Image and prompt (token type 0) attend to each other both ways; answer tokens (type 1) causally."""
        types = batch.inputs.get("token_type_ids")
        return None if types is None else (types == 0) & (batch.attention_mask > 0)

    def generated_token_type(self, key: str) -> int:
        return 1 if key == "token_type_ids" else 0  # generated text is the suffix, as PaliGemma's generate marks it
