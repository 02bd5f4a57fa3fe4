"""Projector variants for LLaVA that transformers does not ship, as registered config/model classes.

``MmdiagLlavaConfig`` (model_type ``mmdiag_llava``) is a ``LlavaConfig`` with a ``projector_type``:
``pool`` (2-D average pooling of the patch grid to ``pool_grid`` x ``pool_grid``, then LLaVA's MLP —
DeCo / C-Abstractor-like, keeps locality) or ``resampler`` (``num_queries`` learned queries that
cross-attend to the patches, then an MLP — Q-Former / Perceiver-style). The model class keeps LLaVA's
module tree, so :class:`~mmdiag.adapters.llava.LlavaAdapter` serves it unchanged. Registration goes
through ``AutoConfig.register`` / ``AutoModelForImageTextToText.register`` (no ``trust_remote_code``).
The linear and MLP projectors need no new class: LLaVA's own projector with ``projector_hidden_act``
``"linear"`` is a linear map, with ``"gelu"`` it is LLaVA-1.5's MLP.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlavaConfig,
    LlavaForConditionalGeneration,
)


class MmdiagLlavaConfig(LlavaConfig):
    """LLaVA with an mmdiag projector (see module docstring)."""

    model_type = "mmdiag_llava"

    def __init__(self, projector_type: str = "pool", pool_grid: int = 4, num_queries: int = 16, **kwargs) -> None:
        self.projector_type = projector_type
        self.pool_grid = pool_grid
        self.num_queries = num_queries
        if projector_type == "pool":
            kwargs.setdefault("mmdiag_token_grid", [pool_grid, pool_grid])
        super().__init__(**kwargs)


class PoolProjector(nn.Module):
    """Adaptive 2-D average pooling of the patch grid, then a two-layer MLP (parameter-light, keeps locality)."""

    def __init__(self, config: MmdiagLlavaConfig) -> None:
        super().__init__()
        self.grid = config.pool_grid
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        self.linear_1 = nn.Linear(vision, text)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text, text)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        batch, n, dim = image_features.shape
        side = int(round(n**0.5))
        grid = image_features.transpose(1, 2).reshape(batch, dim, side, side)
        pooled = nn.functional.adaptive_avg_pool2d(grid, self.grid).flatten(2).transpose(1, 2)
        return self.linear_2(self.act(self.linear_1(pooled)))


class ResamplerProjector(nn.Module):
    """Learned queries cross-attending to the patches (one attention block), then an MLP."""

    def __init__(self, config: MmdiagLlavaConfig) -> None:
        super().__init__()
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        self.queries = nn.Parameter(torch.randn(config.num_queries, vision) * 0.02)
        self.norm = nn.LayerNorm(vision)
        self.attention = nn.MultiheadAttention(vision, num_heads=4, batch_first=True)
        self.linear_1 = nn.Linear(vision, text)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text, text)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        keys = self.norm(image_features)
        queries = self.queries.unsqueeze(0).expand(image_features.shape[0], -1, -1)
        attended, _ = self.attention(queries, keys, keys, need_weights=False)
        return self.linear_2(self.act(self.linear_1(attended + queries)))


class MmdiagLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """LLaVA whose ``multi_modal_projector`` is a :class:`PoolProjector` or :class:`ResamplerProjector`."""

    config_class = MmdiagLlavaConfig

    def __init__(self, config: MmdiagLlavaConfig) -> None:
        super().__init__(config)
        projectors = {"pool": PoolProjector, "resampler": ResamplerProjector}
        if config.projector_type not in projectors:
            raise ValueError(f"unknown projector_type {config.projector_type!r}: choose pool or resampler")
        self.model.multi_modal_projector = projectors[config.projector_type](config)
        self.post_init()


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForImageTextToText`` know the mmdiag LLaVA (idempotent)."""
    with contextlib.suppress(ValueError):  # already registered
        AutoConfig.register(MmdiagLlavaConfig.model_type, MmdiagLlavaConfig)
    with contextlib.suppress(ValueError):
        AutoModelForImageTextToText.register(MmdiagLlavaConfig, MmdiagLlavaForConditionalGeneration)
