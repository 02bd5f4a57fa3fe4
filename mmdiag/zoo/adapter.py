"""The adapter for mmdiag's own LLaVA projector variants: LLaVA's, after registering the classes."""

from __future__ import annotations

from typing import Any

from mmdiag.adapters.hf_loading import LoadOptions
from mmdiag.adapters.llava import LlavaAdapter


class MmdiagLlavaAdapter(LlavaAdapter):
    """``MmdiagLlavaForConditionalGeneration`` keeps LLaVA's module tree; only loading differs."""

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> LlavaAdapter:
        from mmdiag.zoo.projectors import register

        register()
        return super().from_pretrained(path, options, **kwargs)
