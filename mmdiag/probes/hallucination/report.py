"""The hallucination probe's report section (see :mod:`mmdiag.probes.sections`), from its result and records."""

from __future__ import annotations

from typing import Any

from mmdiag.metrics.pope import parse_answer
from mmdiag.probes.sections import (
    ExampleImage,
    Figure,
    Gallery,
    GalleryItem,
    Heading,
    Paragraph,
    ReportSection,
    Table,
)

MAX_EXAMPLES_SHOWN = 6
UNPARSED_NOTE_SHARE = 0.5  # a parsing rule that leaves more than this share unparsed gets a note saying why
POPE_HEADER = ("accuracy", "precision", "recall", "F1", "yes-ratio")
POPE_KEYS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def p_yes(p_yes: float, p_no: float) -> float:
    """P(yes) renormalised over the two answers (0.5 when both are 0)."""
    return p_yes / (p_yes + p_no) if p_yes + p_no else 0.5


def section(result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection:
    out = ReportSection("hallucination", "Hallucination")
    blocks = out.blocks
    pope = result.get("pope") or {}
    if pope:
        blocks += [
            Heading("POPE per split (decisions from first-token logits; yes = positive)"),
            Table(
                ("split", *POPE_HEADER, "n"),
                tuple((split, *(p.get(k) for k in POPE_KEYS), p.get("n")) for split, p in pope.items()),
            ),
        ]
    if result.get("pope_rules"):
        unreadable = unreadable_rules(result)
        rows = tuple(
            (split, rule, *(p.get(k) for k in POPE_KEYS), p.get("unparsed"))
            for split, rules in result["pope_rules"].items()
            for rule, p in rules.items()
            if rule not in unreadable
        )
        if rows:
            blocks += [
                Heading("POPE per split and parsing rule (greedy free-text answers)"),
                Table(("split", "rule", *POPE_HEADER, "unparsed"), rows),
            ]
        blocks += [Paragraph(note, note=True) for note in unparsed_notes(result, records)]
    if result.get("blind_pope"):
        rows = (
            [("the real image", pope["random"].get("accuracy"), pope["random"].get("yes_ratio"), "")]
            if pope.get("random")
            else []
        )
        rows += [
            (kind, p.get("accuracy"), p.get("yes_ratio"), p.get("multimodal_gain"))
            for kind, p in result["blind_pope"].items()
        ]
        blocks += [
            Heading("Blind baselines (random-split questions, no real visual evidence)"),
            Table(("input", "accuracy", "yes-ratio", "multimodal gain"), tuple(rows)),
            Paragraph("A multimodal gain near 0 means the answers do not depend on the image.", note=True),
        ]
    if result.get("counterfactuals"):
        blocks += [Heading("Counterfactual pairs"), _counterfactual_table(result["counterfactuals"])]
        note = (
            "Evidence sensitivity: share of answers that change when the correct answer changes. Prior persistence: "
            "share of yes that survive the edit."
        )
        gap = (result.get("metrics") or {}).get("adversarial_gap")
        if gap is not None:
            note += (
                f" Adversarial gap (false-yes on co-occurring minus random absent objects): {_n(gap.get('value'))}"
                + (f" [{_n(gap['ci_low'])}, {_n(gap['ci_high'])}]" if gap.get("ci_low") is not None else "")
                + "."
            )
        blocks.append(Paragraph(note, note=True))
    chair = result.get("chair")
    if chair:
        blocks += [
            Heading("Captions (CHAIR)"),
            Paragraph(
                f"CHAIR_i {_n(chair.get('chair_i'))}, CHAIR_s {_n(chair.get('chair_s'))}, recall "
                f"{_n(chair.get('recall'))} over {chair.get('captions')} captions ({chair.get('mentions')} "
                "object mentions)."
            ),
        ]
    if result.get("reliability"):
        metrics = result.get("metrics") or {}
        binary = (metrics.get("calibration_error_p_yes") or {}).get("value")
        blocks += [
            Heading("Calibration"),
            Paragraph(
                f"The diagram bins P(yes) in 10 bins over [0, 1]; its calibration error (the same bins) is "
                f"{_n(binary)}. The ECE beside it ({_n((metrics.get('ece') or {}).get('value'))}) is the "
                "top-label ECE of Guo et al. 2017: confidence max(P(yes), 1 − P(yes)) in 10 bins over "
                "[0.5, 1], so the two numbers bin differently."
            ),
            Figure("reliability", {"bins": result["reliability"]}, alt="reliability diagram"),
        ]
    pairs, examples = _pairs_and_examples(records)
    if pairs:
        blocks.append(
            Gallery(
                tuple(pairs),
                title="Counterfactual pairs, side by side",
                limit=3 * MAX_EXAMPLES_SHOWN,
                intro="Each pair shows the scene and its edited twin, the question asked on both, the "
                "right answer on each, and the model's P(yes).",
            )
        )
    if examples:
        blocks.append(
            Gallery(tuple(examples), collapsed="Questions per scene (click to open)", limit=MAX_EXAMPLES_SHOWN)
        )
    return out


def _counterfactual_table(counterfactuals: dict[str, Any]) -> Table:
    def triple(t: list[Any] | None) -> str:
        return "" if not t else f"{_n(t[0])} [{_n(t[1])}, {_n(t[2])}]"

    rows = tuple(
        (
            edit,
            c.get("n"),
            triple(c.get("evidence_sensitivity")),
            triple(c.get("prior_persistence")),
            (c.get("accuracy_before") or [None])[0],
            (c.get("accuracy_after") or [None])[0],
            f"{c['mcnemar'].get('b')} / {c['mcnemar'].get('c')}, {_n(c['mcnemar'].get('p_value'))}",
        )
        for edit, c in counterfactuals.items()
    )
    return Table(
        (
            "edit",
            "n",
            "evidence sensitivity [95% CI]",
            "prior persistence [95% CI]",
            "accuracy before",
            "accuracy after",
            "McNemar b / c, p",
        ),
        rows,
    )


def _pairs_and_examples(records: list[dict[str, Any]]) -> tuple[list[GalleryItem], list[GalleryItem]]:
    pairs, examples = [], []
    for record in records:
        values = record.get("values")
        if not values or "questions" not in values:
            continue
        if len(examples) >= MAX_EXAMPLES_SHOWN:
            break
        blind = values.get("blind", {}).get("mean_colour", {"p_yes": [], "p_no": []})
        rows = tuple(
            (q, ", ".join(sp), lab, p_yes(py, pn), p_yes(by, bn), answer)
            for q, lab, sp, py, pn, by, bn, answer in zip(
                values["questions"],
                values["labels"],
                values["splits"],
                values["p_yes"],
                values["p_no"],
                blind["p_yes"],
                blind["p_no"],
                values.get("answers") or [""] * len(values["questions"]),
            )
        )
        scene = ExampleImage(record["scene"], "scene")
        for cf in values.get("counterfactuals", []):
            pairs.append(
                GalleryItem(
                    (ExampleImage(record["scene"], "original"), ExampleImage(cf["scene_after"], "edited")),
                    (
                        f"{cf['edit']}: {cf['question']}",
                        f"truth {cf['before']} → {cf['after']}; P(yes) "
                        f"{_n(p_yes(cf['p_yes_before'], cf['p_no_before']), 2)} → "
                        f"{_n(p_yes(cf['p_yes_after'], cf['p_no_after']), 2)}",
                    ),
                )
            )
        caption = (record["example_id"],) + (
            (f"caption: {values['caption']}",) if values.get("caption") is not None else ()
        )
        examples.append(
            GalleryItem(
                (scene,), caption, Table(("question", "splits", "truth", "P(yes)", "blind", "answer"), rows, digits=2)
            )
        )
    return pairs, examples


def unreadable_rules(result: dict[str, Any]) -> dict[str, dict[str, tuple[int, int]]]:
    """Parsing rules that could not read most free-text answers in some split: rule -> split -> (unparsed, n)."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for split, rules in (result.get("pope_rules") or {}).items():
        for rule, scores in rules.items():
            n, unparsed = scores.get("n") or 0, scores.get("unparsed") or 0
            if n and unparsed / n > UNPARSED_NOTE_SHARE:
                out.setdefault(rule, {})[split] = (unparsed, n)
    return out


def unparsed_notes(result: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """One note per parsing rule that could not read most free-text answers (its rows are left out of the table),
    quoting an answer it could not parse: its numbers would say how the model words answers, not whether they are
    right."""
    answers = [a for r in records for a in (r.get("values") or {}).get("answers") or [] if isinstance(a, str)]
    notes = []
    for rule, splits in unreadable_rules(result).items():
        example = next((a for a in answers if _unparsed(a, rule)), None)
        quoted = f', e.g. "{example[:60]}"' if example is not None else ""
        counts = ", ".join(f"{split} {unparsed} of {n}" for split, (unparsed, n) in splits.items())
        notes.append(
            f"The {rule} rule cannot read this model's answers ({counts} unparsed): the model writes free "
            f"text{quoted}, which the {rule} rule does not read as yes or no, so its accuracy and F1 would measure "
            "the wording, not the answers; its rows are left out of the table (results.json keeps them). The "
            "logit decisions above do not depend on wording."
        )
    return notes


def _unparsed(answer: str, rule: str) -> bool:
    try:
        return parse_answer(answer, rule) is None
    except ValueError:
        return False


def _n(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
