"""Known answers for the hallucination statistics: CHAIR, McNemar, the counterfactual plan and aggregation."""

from __future__ import annotations

import pytest

from mmdiag.metrics.chair import SynonymTable, chair
from mmdiag.metrics.stats import mcnemar
from mmdiag.probes.hallucination.metrics import Question, _adversarial_gap, _counterfactual_stats
from mmdiag.probes.hallucination.plan import counterfactual_items, pope_items
from mmdiag.scenes.generate import generate_scenes
from mmdiag.scenes.questions import ObjectStatistics
from mmdiag.sources.scenes import SceneSource, as_data

COLOURS_ = SceneSource().attribute_values("colour")
EDITS_ = SceneSource.edits


def test_chair_on_hand_built_captions():
    table = SynonymTable.of_names(SceneSource().vocabulary())
    captions = ["There is a red circle and a blue square .", "two green triangles", "nothing here", "a circle"]
    truths = [["red circle"], ["green triangle", "red square"], ["blue circle"], ["red circle"]]
    scores = chair(captions, truths, table)
    # mentions: red circle, blue square (wrong), green triangle; "a circle" names no colour: not an object
    assert (scores.mentions, scores.hallucinated) == (3, 1)
    assert scores.chair_i == pytest.approx(1 / 3)
    assert scores.chair_s == pytest.approx(1 / 4)
    assert scores.recall == pytest.approx(2 / 5)


def test_mcnemar_exact_values():
    # b = 4 (right then wrong), c = 0: two-sided exact p = 2 * 0.5**4
    assert mcnemar([1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 1]) == {"b": 4, "c": 0, "p_value": pytest.approx(0.125)}
    assert mcnemar([1, 0], [0, 1])["p_value"] == pytest.approx(1.0)
    assert mcnemar([1, 1], [1, 1]) == {"b": 0, "c": 0, "p_value": 1.0}
    # b = 10, c = 1: p = 2 * (C(11,0) + C(11,1)) / 2**11 = 24 / 2048
    assert mcnemar([1] * 10 + [0], [0] * 10 + [1])["p_value"] == pytest.approx(24 / 2048)


def test_counterfactual_plan_has_exact_answers():
    scenes = as_data(generate_scenes(30, seed=3))
    for index, scene in enumerate(scenes):
        for item in counterfactual_items(scene, index, 0, None, COLOURS_, EDITS_):
            after = item.scene_after
            if item.edit in ("remove", "swap"):
                assert scene.has(item.subject) and not after.has(item.subject)
            else:
                flipped = {(r.subject, r.relation, r.object) for r in after.relations()}
                text = item.question
                assert any(
                    f"{s} {rel} the {o}" in text
                    for s, rel, o in {(r.subject, r.relation, r.object) for r in scene.relations()}
                )
                assert not any(f"the {s} {rel} the {o}" in text for s, rel, o in flipped)


def test_pope_items_merge_splits_and_balance_labels():
    scenes = as_data(generate_scenes(20, seed=3))
    stats = ObjectStatistics.of(scenes)
    for index, scene in enumerate(scenes):
        items = pope_items(scene, index, stats, 0, 3, scenes.source.vocabulary())
        for split in ("random", "popular", "adversarial"):
            labels = [i.label for i in items if split in i.splits]
            assert labels.count("yes") == labels.count("no") == min(3, len(scene.objects))
        assert len({(i.object, i.label) for i in items}) == len(items)


def test_counterfactual_statistics_on_a_hand_built_set():
    def pair(before_yes, after_yes):
        return {
            "before": "yes",
            "after": "no",
            "p_yes_before": 0.9 if before_yes else 0.1,
            "p_no_before": 0.5,
            "p_yes_after": 0.9 if after_yes else 0.1,
            "p_no_after": 0.5,
        }

    pairs = [("a", pair(True, False)), ("b", pair(True, True)), ("c", pair(True, True)), ("d", pair(False, False))]
    stats = _counterfactual_stats(pairs, seed=0)
    assert stats["evidence_sensitivity"][0] == pytest.approx(1 / 4)
    assert stats["prior_persistence"][0] == pytest.approx(2 / 3)
    assert stats["accuracy_before"][0] == pytest.approx(3 / 4) and stats["accuracy_after"][0] == pytest.approx(2 / 4)
    assert stats["mcnemar"]["b"] == 2 and stats["mcnemar"]["c"] == 1


def test_adversarial_gap_known_answer():
    rows = [
        Question(*row)
        for row in (  # scene, question, object, label, splits, p_yes, p_no
            ("s1", "", "x", "no", ["adversarial"], 0.9, 0.1),
            ("s1", "", "y", "no", ["random"], 0.1, 0.9),
            ("s2", "", "x", "no", ["adversarial", "random"], 0.9, 0.1),
            ("s2", "", "z", "no", ["random"], 0.1, 0.9),
        )
    ]
    # s1: 1 - 0 = 1; s2: adversarial 1, random (1 + 0) / 2 = 0.5 -> 0.5; mean 0.75
    assert _adversarial_gap(rows, seed=0).value == pytest.approx(0.75)


def test_cooccurring_removal_erases_each_of_the_planted_pair():
    """In a set where green triangles accompany red circles, a scene holding both yields two pairs: the green
    triangle erased (the red circle stays) and the red circle erased; each answer flips to no."""
    from mmdiag.probes.hallucination.plan import most_cooccurring_pair
    from mmdiag.scenes.generate import Cooccurrence, SceneRecipe

    recipe = SceneRecipe(cooccurrence=Cooccurrence("red circle", "green triangle", p=1.0, anchor_rate=0.6))
    scenes = as_data(generate_scenes(80, seed=3, recipe=recipe))
    stats = ObjectStatistics.of(scenes)
    both = [(i, s) for i, s in enumerate(scenes) if s.has("red circle") and s.has("green triangle")]
    assert len(both) > 20
    for index, scene in both:
        assert most_cooccurring_pair(scene, stats) == ("green triangle", "red circle")
        items = [
            cf
            for cf in counterfactual_items(scene, index, 0, stats, COLOURS_, EDITS_)
            if cf.edit == "remove_cooccurring"
        ]
        assert {item.subject for item in items} == {"red circle", "green triangle"}
        for item in items:
            assert (item.before, item.after) == ("yes", "no") and not item.scene_after.has(item.subject)
            assert len(item.scene_after.objects) == len(scene.objects) - 1
    single = next((i, s) for i, s in enumerate(scenes) if len(s.objects) == 1)
    assert all(
        cf.edit != "remove_cooccurring" for cf in counterfactual_items(single[1], single[0], 0, stats, COLOURS_, EDITS_)
    )


def test_paired_values_per_scene_known_answers():
    """Per-scene adversarial gap and co-occurring persistence, computed by hand; undefined (NaN) where the scene
    has no such question, which compare skips."""
    import math

    from mmdiag.probes.hallucination import HallucinationProbe

    def cf(edit, before_yes, after_yes):
        return {
            "edit": edit,
            "p_yes_before": 0.9 if before_yes else 0.1,
            "p_no_before": 0.1 if before_yes else 0.9,
            "p_yes_after": 0.9 if after_yes else 0.1,
            "p_no_after": 0.1 if after_yes else 0.9,
        }

    values = {
        "labels": ["yes", "no", "no", "no"],
        "splits": [["random", "adversarial"], ["adversarial"], ["adversarial"], ["random"]],
        "p_yes": [0.9, 0.8, 0.2, 0.1],
        "p_no": [0.1, 0.2, 0.8, 0.9],
        "blind": {"mean_colour": {"p_yes": [0.5] * 4, "p_no": [0.6] * 4}},
        "counterfactuals": [
            cf("remove_cooccurring", True, True),
            cf("remove_cooccurring", True, False),
            cf("remove_cooccurring", False, True),
            cf("remove", True, True),
        ],
    }
    paired = HallucinationProbe.paired_values(values)
    assert paired["adversarial_gap"] == pytest.approx(0.5 - 0.0)  # adversarial false yes 1 of 2, random 0 of 1
    assert paired["prior_persistence_cooccurring"] == (1.0, 2.0)  # of the two yes-before pairs, one survives
    assert paired["accuracy"] == (2.0, 2.0) and paired["false_yes_rate"] == (1.0, 3.0)  # random split; absent: 1 of 3
    assert paired["evidence_sensitivity"] == (0.0, 1.0)
    values["counterfactuals"] = [cf("remove", True, True)]
    values["splits"] = [["random"]] * 4
    paired = HallucinationProbe.paired_values(values)
    assert math.isnan(paired["adversarial_gap"]) and paired["prior_persistence_cooccurring"] == (0.0, 0.0)


def test_relation_items_are_balanced_statements_and_converses():
    from mmdiag.probes.hallucination.plan import CONVERSE, relation_items

    scenes = as_data(generate_scenes(40, seed=5))
    seen_axes = set()
    for index, scene in enumerate(scenes):
        items = relation_items(scene, index, 0)
        truths = {(r.subject, r.relation, r.object) for r in scene.relations()}
        for yes, no in zip(items[::2], items[1::2]):
            assert (yes.label, no.label) == ("yes", "no") and yes.axis == no.axis
            seen_axes.add(yes.axis)
            stated = next(t for t in truths if yes.question == f"Is the {t[0]} {t[1]} the {t[2]}?")
            assert no.question == f"Is the {stated[0]} {CONVERSE[stated[1]]} the {stated[2]}?"
        for axis in ("horizontal", "vertical"):
            assert sum(i.axis == axis for i in items) <= 4  # two pairs per axis, two questions each
        if len(scene.objects) < 2:
            assert items == []
    assert seen_axes == {"horizontal", "vertical"}


def test_correctness_metrics_fail_a_consistently_wrong_model_that_still_reacts():
    """A model that mirrors every relation flips its answers with the mirror (sensitivity 1) but is wrong on both
    sides (mirror accuracy 0); a yes-sayer scores 0.5 on both correctness metrics."""
    from mmdiag.probes.hallucination.metrics import _mirror_accuracy, _relation_accuracy

    def record(says_yes_before, says_yes_after, rel_says):
        yes = lambda s: {"p_yes": 0.9, "p_no": 0.1} if s else {"p_yes": 0.1, "p_no": 0.9}  # noqa: E731
        cf = {
            "edit": "mirror",
            "before": "yes",
            "after": "no",
            **{f"{k}_before": v for k, v in yes(says_yes_before).items()},
            **{f"{k}_after": v for k, v in yes(says_yes_after).items()},
        }
        return {
            "example_id": "s",
            "counterfactuals": [cf],
            "relations": {
                "labels": ["yes", "no"],
                "axes": ["horizontal"] * 2,
                "p_yes": [yes(s)["p_yes"] for s in rel_says],
                "p_no": [yes(s)["p_no"] for s in rel_says],
            },
        }

    mirrored = [record(False, True, [False, True]) for _ in range(5)]
    yes_sayer = [record(True, True, [True, True]) for _ in range(5)]
    right = [record(True, False, [True, False]) for _ in range(5)]
    for rows, expected in ((mirrored, 0.0), (yes_sayer, 0.5), (right, 1.0)):
        assert _mirror_accuracy(rows, 0).value == expected
        assert _relation_accuracy(rows, "horizontal", 0).value == expected
    assert _relation_accuracy(right, "vertical", 0).undefined
