"""The hallucination probe's finding for the top of the report (:class:`mmdiag.probes.sections.Finding`)."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.sections import Figure, Finding, ci_side, value_ci

BLIND_LABELS = {"blank": "blank", "mean_colour": "mean colour", "noise": "noise", "vcd_noise": "VCD noise"}


def finding(result: dict[str, Any], records: list[dict[str, Any]]) -> Finding:
    """POPE accuracy and yes-ratio, how much the image adds over a blind input, and whether answers follow the
    evidence when it is edited."""
    metrics = result.get("metrics") or {}
    accuracy = metrics.get("accuracy") or metrics.get("pair_accuracy")
    clauses = []
    if accuracy and accuracy.get("value") is not None:
        head = "POPE accuracy" if "accuracy" in metrics else "Image-caption pair accuracy"
        clause = f"{head} is {value_ci(accuracy, percent=True)}"
        ratio = metrics.get("yes_ratio")
        if ratio and ratio.get("value") is not None:
            clause += f" with a yes-ratio of {value_ci(ratio, percent=True)}"
        clauses.append(clause)
    gain = metrics.get("multimodal_gain")
    if gain and gain.get("value") is not None:
        clauses.append(
            f"with the image replaced by its mean colour, accuracy falls by {value_ci(gain)} (multimodal gain; "
            "0 for a model that ignores the image)"
        )
    evidence = metrics.get("evidence_sensitivity")
    if evidence and evidence.get("value") is not None:
        clauses.append(
            f"{value_ci(evidence, percent=True)} of answers change when the asked object is removed or swapped"
        )
    sentence = "; ".join(clauses) + "." if clauses else "No hallucination metric has a value on this run."
    sentence = sentence[0].upper() + sentence[1:]
    steps = []
    ratio = metrics.get("yes_ratio")
    if ratio and ci_side(ratio, 0.6) == "above":
        steps.append("The model says yes too often: see whether co-occurrence priors drive it with --suite prior.")
    if gain and ci_side(gain, 0.0) not in (None, "above"):
        steps.append("The answers do not depend on the image: the attention and spatial cards say where it is lost.")
    figure = _accuracy_by_input(result)
    return Finding(
        "Hallucination under counterfactual images",
        sentence,
        figure=figure,
        no_figure="" if figure is not None else "no blind-input baselines were measured on this run",
        next_steps=tuple(steps),
    )


def _accuracy_by_input(result: dict[str, Any]) -> Figure | None:
    real = ((result.get("pope") or {}).get("random") or {}).get("accuracy")
    blind = result.get("blind_pope") or {}
    if real is None or not blind:
        return None
    groups = ["the image", *(BLIND_LABELS.get(kind, kind) for kind in blind)]
    return Figure(
        "bars",
        {
            "groups": groups,
            "series": {"POPE accuracy (random split)": [real, *(p.get("accuracy") for p in blind.values())]},
            "ylabel": "accuracy",
            "ylim": [0, 1],
            "lines": [0.5],
            "size": [4.6, 2.6],
        },
        alt="accuracy with the image and with blind inputs (dashed: chance)",
    )
