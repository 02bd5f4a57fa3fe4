"""Blind inputs: images that carry no visual evidence, to measure what the language side answers alone.

``blank`` (one flat colour), ``mean_colour`` (the image's own mean colour), ``gaussian_noise``, and
``vcd_noise`` (VCD's forward-diffusion noise, Leng et al. CVPR 2024, applied to the preprocessed tensor).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

VCD_STEPS = 1000


def blank(size: tuple[int, int], rgb: tuple[int, int, int] = (128, 128, 128)) -> Image.Image:
    """A flat image of one colour."""
    return Image.new("RGB", size, rgb)


def mean_colour(image: Image.Image) -> Image.Image:
    """A flat image in ``image``'s mean colour (keeps global colour statistics, removes all structure)."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return blank(image.size, tuple(int(round(v)) for v in mean))  # type: ignore[arg-type]


def gaussian_noise(size: tuple[int, int], seed: int = 0, mean: float = 128.0, std: float = 64.0) -> Image.Image:
    """Seeded i.i.d. Gaussian pixel noise, clipped to [0, 255]."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(mean, std, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def vcd_alpha_bar(t: int, steps: int = VCD_STEPS) -> float:
    """ᾱ_t of VCD's schedule: β = sigmoid(linspace(-6, 6, T)) * (5e-3 - 1e-5) + 1e-5, ᾱ_t = Π_{s<=t}(1 - β_s)."""
    if not 0 <= t < steps:
        raise ValueError(f"noise step t must lie in [0, {steps})")
    betas = torch.sigmoid(torch.linspace(-6, 6, steps, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5
    return float(torch.cumprod(1 - betas, dim=0)[t])


def vcd_noise(pixel_values: torch.Tensor, t: int = 500, seed: int = 0) -> torch.Tensor:
    """v' = sqrt(ᾱ_t) v + sqrt(1 - ᾱ_t) ε on a preprocessed pixel tensor (VCD, default t = 500)."""
    alpha_bar = vcd_alpha_bar(t)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(pixel_values.shape, generator=generator, dtype=torch.float32).to(pixel_values)
    return alpha_bar**0.5 * pixel_values + (1 - alpha_bar) ** 0.5 * noise
