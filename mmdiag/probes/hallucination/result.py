"""The hallucination probe's typed result and the caption template its dual-encoder pairs use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmdiag.probes.base import ProbeResult

CAPTION = "a photo of a {name}"


@dataclass
class HallucinationResult(ProbeResult):
    """POPE per split and rule, blind baselines, counterfactual pairs, CHAIR, calibration."""

    pope: dict[str, Any] = field(default_factory=dict)  # split -> scores from logits
    pope_rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> rule -> scores from free text
    blind_pope: dict[str, Any] = field(default_factory=dict)  # blind kind -> scores (random split questions)
    counterfactuals: dict[str, Any] = field(default_factory=dict)  # edit -> statistics
    chair: dict[str, Any] = field(default_factory=dict)
    reliability: list[dict[str, float]] = field(default_factory=list)
    question_template: str = "Is there a {object} in the image?"
