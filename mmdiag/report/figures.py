"""Figures as embedded PNG data URIs, drawn from results JSON and example records only."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PART_COLOURS = {"image": "#1f77b4", "system": "#ff7f0e", "instruction": "#2ca02c", "bos": "#7f7f7f"}


def _to_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_uri(image: Image.Image, scale: int = 2) -> str:
    """A PIL image as a PNG data URI (nearest-neighbour upscaled so small scenes stay crisp)."""
    buffer = io.BytesIO()
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def attention_layer_curves(result: dict[str, Any], key: str = "layer_mass", title: str | None = None) -> str | None:
    """Mass per part across LLM layers with bootstrap CI bands; sink-free and untrained image mass dashed."""
    layer_mass = result.get(key) or {}
    if not layer_mass:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 3.3))
    n_layers = len(next(iter(layer_mass.values())))
    layers = np.arange(n_layers)
    for part, values in layer_mass.items():
        if not any(values):
            continue  # e.g. "generated" at the prompt row
        ax.plot(layers, values, marker="o", label=part, color=PART_COLOURS.get(part))
        ci = np.array((result.get(f"{key}_ci") or {}).get(part) or [], dtype=float)
        if ci.size:
            ax.fill_between(layers, ci[:, 0], ci[:, 1], alpha=0.2, color=PART_COLOURS.get(part))
    if key == "layer_mass":
        free = (result.get("sink_free_layer_mass") or {}).get("image")
        if free:
            ax.plot(layers, free, ls="--", color=PART_COLOURS["image"], label="image, sink-free")
        sinks = result.get("sink_layer_mass")
        if sinks:
            ax.plot(layers, sinks, ls="-.", color=PART_COLOURS["bos"], label="sinks (BOS + visual)")
        untrained = (result.get("untrained_layer_mass") or {}).get("image")
        if untrained:
            ax.plot(layers, untrained, ls=":", color="black", label="image, untrained copy")
    ax.set_xticks(layers)
    ax.set_xlabel("LLM layer")
    ax.set_ylabel("attention mass")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return _to_uri(fig)


PART_COLOURS["generated"] = "#d62728"


def head_layer_heatmap(result: dict[str, Any]) -> str | None:
    """Image mass per head (x) and layer (y)."""
    matrix = np.array(result.get("head_image_mass") or [], dtype=float)
    if matrix.size == 0:
        return None
    fig, ax = plt.subplots(figsize=(max(3, 0.4 * matrix.shape[1] + 2), max(2.5, 0.3 * matrix.shape[0] + 1.5)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label="image mass")
    return _to_uri(fig)


def attention_overlay(image: np.ndarray, attention: list[float], grid: tuple[int, int]) -> str:
    """The example's image with its image-token attention (mean over layers and heads) laid over the patch grid."""
    resolution = image.shape[0]
    heat = np.array(attention, dtype=float).reshape(grid)
    fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.2))
    axes[0].imshow(image)
    axes[1].imshow(image)
    axes[1].imshow(heat, cmap="inferno", alpha=0.6, extent=(0, resolution, resolution, 0), interpolation="nearest")
    for ax in axes:
        ax.axis("off")
    return _to_uri(fig)


def retention_bars(result: dict[str, Any]) -> str | None:
    """Retention of each task at each post-projector stage (1 = as decodable as before the projector)."""
    scores = result.get("scores") or {}
    stages = result.get("stages") or []
    if len(stages) < 2:
        return None
    tasks = [t for t in result.get("tasks", []) if t != "control"]
    fig, ax = plt.subplots(figsize=(6.5, 3))
    width = 0.8 / (len(stages) - 1)
    for k, stage in enumerate(stages[1:]):
        values = [scores[stage][t].get("retention") for t in tasks]
        ax.bar(np.arange(len(tasks)) + k * width, [np.nan if v is None else v for v in values], width, label=stage)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(tasks)) + width * (len(stages) - 2) / 2, tasks, rotation=20)
    ax.set_ylabel(f"retention vs {stages[0]}")
    ax.legend(fontsize=8)
    return _to_uri(fig)


def reliability_diagram(bins: list[dict[str, float]]) -> str | None:
    """Predicted P(yes) against the observed share of yes, per bin (marker size ~ count)."""
    if not bins:
        return None
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    counts = np.array([b["count"] for b in bins], dtype=float)
    ax.scatter([b["mean_p_yes"] for b in bins], [b["share_yes"] for b in bins], s=20 + 180 * counts / counts.max())
    ax.plot([b["mean_p_yes"] for b in bins], [b["share_yes"] for b in bins], lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(yes)")
    ax.set_ylabel("observed share of yes")
    return _to_uri(fig)
