"""The verdict a person reads first: PASS/FAIL, the failed gates with value and CI against the threshold,
and one plain sentence per failure saying what it means. Terminal, report.md and report.html share it."""

from __future__ import annotations

from typing import Any

# what a failed gate on probe.metric says about the model, in one plain sentence
FAILURE_MEANINGS: dict[str, str] = {
    "hallucination.multimodal_gain": "answers are hardly more accurate with the image than with a blank image of "
                                     "its mean colour: the model is not using the image",
    "hallucination.multimodal_gain_noise": "answers are hardly more accurate with the image than with noise: "
                                           "the model is not using the image",
    "hallucination.evidence_sensitivity": "answers do not change when the asked object is erased from the image: "
                                          "the model answers from its prior, not from the evidence",
    "hallucination.prior_persistence": "'yes' survives erasing the object: the model sees what it expects",
    "hallucination.prior_persistence_cooccurring": "'yes' survives erasing an object that usually comes with the "
                                                   "others: a learned co-occurrence prior overrides the image",
    "hallucination.mirror_sensitivity": "left/right answers do not flip when the scene is mirrored: the image's "
                                        "layout does not reach the answers",
    "hallucination.accuracy": "presence answers are often wrong",
    "hallucination.accuracy_adversarial": "absent objects that usually co-occur with the scene's objects are often "
                                          "called present: the language prior answers where the image should",
    "hallucination.accuracy_popular": "frequent absent objects are often called present",
    "hallucination.yes_ratio": "the model says 'yes' far more (or less) often than the balanced questions call for: "
                               "a yes-bias, not evidence",
    "hallucination.false_yes_rate": "the model calls absent objects present: a yes-bias or a prior",
    "hallucination.mirror_accuracy": "left/right answers are wrong on the scene or on its mirror: the model reads "
                                     "the layout wrongly (it may still react to the mirror)",
    "hallucination.relation_accuracy_horizontal": "left/right statements are not told from their converses: "
                                                  "the layout does not reach the answers correctly",
    "hallucination.relation_accuracy_vertical": "above/below statements are not told from their converses",
    "hallucination.f1": "presence answers are often wrong",
    "hallucination.f1_adversarial": "absent objects that usually co-occur with the scene are often called present",
    "hallucination.adversarial_gap": "the model says 'yes' to absent objects that usually co-occur with the scene "
                                     "more often than to other absent objects: a co-occurrence prior",
    "hallucination.chair_i": "captions name objects that are not in the image",
    "hallucination.chair_s": "many captions name an object that is not in the image",
    "hallucination.pair_accuracy": "the right caption does not score above a wrong one: image and text are not aligned",
    "attention.blind_answer_shift": "replacing the image with a blank one of its mean colour barely moves the "
                                    "answer: the language model ignores the image tokens",
    "attention.noise_answer_shift": "replacing the image with noise barely moves the answer: the language model "
                                    "ignores the image tokens",
    "attention.mean_image_mass": "the language model gives the image tokens almost no attention",
    "spatial.projector_grid_cell_above_chance": "the object's position cannot be read from the projector's tokens "
                                                "above chance: the projector loses the image's spatial layout",
    "spatial.projector_grid_cell_in_content_above_chance": "the projector's tokens do not say where the object is "
                                                           "by their content (only their order might): the vision "
                                                           "tower carries no position information",
    "attention.modality_gap": "image and text embeddings sit far apart: the two encoders are not aligned",
    "spatial.failed_examples": "examples failed to run: the numbers cover only part of the suite",
}


def failure_meaning(metric: str) -> str:
    """The plain sentence for a failed gate on ``probe.metric``."""
    if metric.endswith(".failed_examples"):
        return "examples failed to run: the numbers cover only part of the suite (see the failed examples)"
    return FAILURE_MEANINGS.get(metric, f"{metric} is on the wrong side of its threshold")


def _num(value: Any) -> str:
    return "undefined" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def describe_outcome(gate: dict[str, Any]) -> str:
    """``gate: FAIL (ci_low 0.01 < 0.25; multimodal_gain 0.03 [0.01, 0.05]) - meaning`` on one line."""
    status = "pass" if gate["passed"] else "FAIL"
    if gate.get("reason") and gate.get("value") is None:
        return f"{gate['gate']}: {status} - {gate.get('meaning') or gate['reason']}"
    metric = gate.get("metric", gate["gate"].split()[0]).split(".", 1)[-1]
    ci = (f" [{_num(gate.get('ci_low'))}, {_num(gate.get('ci_high'))}]"
          if gate.get("ci_low") is not None or gate.get("ci_high") is not None else "")
    estimate = gate.get("estimate", gate.get("value"))
    line = f"{gate['gate']}: {status} ({metric} {_num(estimate)}{ci}"
    if gate.get("bound", "value") != "value":
        line += f"; {gate['bound']} {_num(gate.get('value'))}"
    line += f", margin {_num(gate.get('margin'))})"
    if not gate["passed"] and gate.get("meaning"):
        line += f" - {gate['meaning']}"
    return line


def is_integrity_gate(gate: dict[str, Any]) -> bool:
    """A gate on ``<probe>.failed_examples``: it checks that the run ran, not the model's quality."""
    return gate["gate"].split()[0].endswith(".failed_examples")


def is_release_verdict(results: dict[str, Any]) -> bool:
    """Whether the run's gates judge the model (at least one quality gate), not only the run's integrity."""
    return any(not is_integrity_gate(g) for g in results.get("gates", []))


def verdict_lines(results: dict[str, Any]) -> list[str]:
    """The verdict first, then each failed gate (and each failed probe) on one line. A passing run whose gates
    are integrity checks alone (``--suite quick``) says so instead of PASS: it is no release verdict."""
    gates = results.get("gates", [])
    failed = [g for g in gates if not g["passed"]]
    broken = [(name, p["error"]) for name, p in results.get("probes", {}).items() if "error" in p]
    if results.get("verdict") == "pass" and not is_release_verdict(results):
        return [f"no release verdict: integrity checks only ({len(gates)} of {len(gates)} passed); the suite gates "
                "no quality metric (the default suite, release, does)"]
    head = "PASS" if results.get("verdict") == "pass" else "FAIL"
    summary = f"{head}: {len(gates) - len(failed)} of {len(gates)} gates passed"
    if failed:
        summary += f"; failed: {', '.join(g['gate'] for g in failed)}"
    lines = [summary]
    lines += [f"  {describe_outcome(g)}" for g in failed]
    lines += [f"  probe {name} failed: {error}" for name, error in broken]
    return lines
