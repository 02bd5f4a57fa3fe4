"""Shared machinery of dual encoders (CLIP-style): similarity from normalised embeddings."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from PIL import Image

from mmdiag.adapters.base import DUAL_ENCODER, Adapter


class DualEncoderAdapter(Adapter):
    """An image tower and a text tower meeting in one embedding space."""

    kind = DUAL_ENCODER
    pooling_query = "the CLS token"  # the token whose attention over patches cls_attention returns

    @abc.abstractmethod
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[n_images, dim] embeddings, not normalised."""

    @abc.abstractmethod
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """[n_texts, dim] embeddings, not normalised."""

    @torch.no_grad()
    def embeddings(self, images: Sequence[Image.Image], texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised image and text embeddings."""
        img = torch.nn.functional.normalize(self.image_embeddings(images).float(), dim=-1)
        txt = torch.nn.functional.normalize(self.text_embeddings(texts).float(), dim=-1)
        return img, txt

    @torch.no_grad()
    def similarity(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """[n_images, n_texts] cosine similarities."""
        img, txt = self.embeddings(images, texts)
        return img @ txt.T

    def cls_attention(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[n_images, layers, heads, n_patches] attention of the CLS token over patches, per vision layer."""
        from mmdiag.errors import CapabilityError

        raise CapabilityError(f"{self.family} does not expose vision attention weights")
