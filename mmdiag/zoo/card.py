"""A zoo model's card, as a run records it: what the model is and what it measured on held-out scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD = "card.json"
CARD_FIELDS = (
    "name",
    "description",
    "heldout_scenes",
    "presence_accuracy",
    "relation_accuracy",
    "relation_accuracy_horizontal",
    "relation_accuracy_vertical",
    "prior_yes_after_removal",
    "parameters",
    "train_seconds",
)


def card_summary(folder: str | Path | None) -> dict[str, Any] | None:
    """The card of a reference-zoo checkpoint folder (its ``card.json`` names a recipe), else ``None``; an unreadable
    card is treated as none (the card only describes the model, the audit never depends on it)."""
    if folder is None or not isinstance(folder, (str, Path)):
        return None
    path = Path(folder) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict) or "recipe" not in card or "name" not in card:
        return None
    return {key: card[key] for key in CARD_FIELDS if key in card}
