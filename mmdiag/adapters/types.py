"""What adapters hand the probes: model kinds, prepared batches, yes/no scores, feature stages, model info."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

GENERATIVE = "generative"
DUAL_ENCODER = "dual_encoder"


@dataclass
class PreparedBatch:
    """Model inputs for a batch of (image, prompt) pairs and where the image tokens are.

    ``image_spans[b]`` lists ``(start, end)`` half-open ranges of image-token positions in row ``b``
    of ``inputs["input_ids"]``; ``token_grid`` is the (rows, cols) layout of those tokens when they
    form one patch grid (LLaVA), else ``None``. ``token_regions[b]`` then places each of row ``b``'s image
    tokens (span order) on the image as a (y0, x0, y1, x1) box in fractions of its height and width, NaN
    for tokens that show no region (tile separators, row ends), when the family's tokens have a place
    (LLaVA-NeXT tiles, Qwen2-VL merged patches); ``None`` for tokens with none (BLIP-2 queries).
    """

    inputs: dict[str, torch.Tensor]
    prompts: list[str]
    image_spans: list[list[tuple[int, int]]]
    token_grid: tuple[int, int] | None
    padding_side: str = "right"
    token_regions: list[np.ndarray] | None = None

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.inputs["attention_mask"]

    def last_positions(self) -> torch.Tensor:
        """Index of the last real (non-padding) token of each row: where the first answer token is read."""
        mask = self.attention_mask.long()
        return mask.shape[1] - 1 - mask.flip(dims=[1]).argmax(dim=1)


@dataclass
class YesNoScores:
    """First-answer-token probabilities, summed over the tokenizer's yes/no spellings.

    ``p_yes`` and ``p_no`` are shares of the full next-token distribution; ``p_yes_norm`` renormalises
    them over the two answers. The decision is yes iff ``p_yes > p_no``.
    """

    p_yes: np.ndarray
    p_no: np.ndarray

    @property
    def p_yes_norm(self) -> np.ndarray:
        total = self.p_yes + self.p_no
        return np.divide(self.p_yes, total, out=np.full_like(self.p_yes, 0.5), where=total > 0)

    @property
    def says_yes(self) -> np.ndarray:
        return self.p_yes > self.p_no


@dataclass
class StageFeatures:
    """Per-image token features of one stage, ``tokens`` shaped [batch, n_tokens, dim].

    ``grid`` is the (rows, cols) layout of the tokens when they are patches, else ``None``.
    """

    name: str
    tokens: torch.Tensor
    grid: tuple[int, int] | None = None


@dataclass
class AdapterInfo:
    """What a report says about the model under audit."""

    family: str
    kind: str
    architecture: str
    source: str
    n_parameters: int
    extra: dict[str, Any] = field(default_factory=dict)
