"""Figures as embedded PNG data URIs, drawn from the figure data of the probes' report sections
(:class:`mmdiag.probes.sections.Figure`): generic charts that know no probe's result keys."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


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


def lines(data: dict[str, Any]) -> str | None:
    """Lines over ``x`` (one per series: label, values, colour, marker or line style ``ls``, optional CI band
    ``ci`` as [[low, high], ...]), with axis labels, ``ylim`` and an optional ``title``."""
    series = data.get("series") or []
    if not series:
        return None
    fig, ax = plt.subplots(figsize=tuple(data.get("size") or (6.2, 3.3)))
    x = np.asarray(data["x"])
    for s in series:
        style = {"marker": s["marker"]} if s.get("marker") else {"ls": s.get("ls", "-")}
        ax.plot(x, s["values"], **style, label=s["label"], color=s.get("colour"))
        ci = np.array(s.get("ci") or [], dtype=float)
        if ci.size:
            ax.fill_between(x, ci[:, 0], ci[:, 1], alpha=0.2, color=s.get("colour"))
    ax.set_xticks(x)
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    if data.get("ylim"):
        ax.set_ylim(*data["ylim"])
    if data.get("title"):
        ax.set_title(data["title"], fontsize=9)
    ax.legend(fontsize=data.get("legend_fontsize", 7), ncol=3)
    ax.grid(alpha=0.3)
    return _to_uri(fig)


def heatmap(data: dict[str, Any]) -> str | None:
    """A matrix (rows on y, columns on x) on [0, 1] with a colour bar labelled ``label``."""
    matrix = np.array(data.get("matrix") or [], dtype=float)
    if matrix.size == 0:
        return None
    fig, ax = plt.subplots(figsize=(max(3, 0.4 * matrix.shape[1] + 2), max(2.5, 0.3 * matrix.shape[0] + 1.5)))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    fig.colorbar(im, ax=ax, label=data.get("label", ""))
    return _to_uri(fig)


def overlay(image: np.ndarray, attention: list[float], grid: tuple[int, int]) -> str:
    """An image beside itself with per-token attention laid over its token grid."""
    resolution = image.shape[0]
    heat = np.array(attention, dtype=float).reshape(grid)
    fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.2))
    axes[0].imshow(image)
    axes[1].imshow(image)
    axes[1].imshow(heat, cmap="inferno", alpha=0.6, extent=(0, resolution, resolution, 0), interpolation="nearest")
    for ax in axes:
        ax.axis("off")
    return _to_uri(fig)


def bars(data: dict[str, Any]) -> str | None:
    """Grouped bars: one group per ``groups`` entry, one bar per series (None drawn as a gap), with horizontal
    reference ``lines`` (the first dashed)."""
    series, groups = data.get("series") or {}, data.get("groups") or []
    if not series:
        return None
    fig, ax = plt.subplots(figsize=tuple(data.get("size") or (6.5, 3)))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + k * width, [np.nan if v is None else v for v in values], width, label=label)
    for i, y in enumerate(data.get("lines") or []):
        ax.axhline(y, color="black" if i == 0 else "grey", lw=0.8, **({"ls": "--"} if i == 0 else {}))
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups, rotation=20)
    ax.set_ylabel(data.get("ylabel", ""))
    if data.get("ylim"):
        ax.set_ylim(*data["ylim"])
    if len(series) > 1 or data.get("legend"):
        ax.legend(fontsize=data.get("legend_fontsize", 8))
    return _to_uri(fig)


def reliability(data: dict[str, Any]) -> str | None:
    """Predicted P(yes) against the observed share of yes, per bin (marker size ~ count)."""
    bins = data.get("bins") or []
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


DRAWERS = {"lines": lines, "heatmap": heatmap, "bars": bars, "reliability": reliability}
