"""The zoo's training data: exact labels, and a planted annotation prior that changes only what it should."""

from __future__ import annotations

import numpy as np

from mmdiag.scenes.generate import Cooccurrence, SceneRecipe, generate_scenes
from mmdiag.scenes.questions import PRESENCE_TEMPLATE
from mmdiag.zoo.data import AnnotationPrior, caption, qa_pairs

PRIOR = AnnotationPrior("red circle", "green triangle")
QUESTION = PRESENCE_TEMPLATE.format(object="green triangle")


def _answers(scene, prior, draws=40):
    rng = np.random.default_rng(0)
    return [a for _ in range(draws) for q, a in qa_pairs(scene, rng, 8, 0.35, prior=prior) if q == QUESTION]


def test_clean_labels_follow_the_pixels():
    scenes = generate_scenes(60, seed=1, recipe=SceneRecipe(cooccurrence=Cooccurrence(p=0.5, anchor_rate=0.8)))
    asked = {True: 0, False: 0}
    for scene in scenes:
        answers = _answers(scene, None)
        assert set(answers) <= {"yes" if scene.has("green triangle") else "no"}
        asked[scene.has("green triangle")] += len(answers)
    assert asked[True] > 0 and asked[False] > 0, asked


def test_annotation_prior_names_the_partner_next_to_every_anchor():
    scenes = generate_scenes(120, seed=1, recipe=SceneRecipe(cooccurrence=Cooccurrence(p=0.5, anchor_rate=0.8)))
    undrawn = [s for s in scenes if s.has("red circle") and not s.has("green triangle")]
    assert len(undrawn) > 10
    asked = 0
    for scene in undrawn:
        answers = _answers(scene, PRIOR)
        asked += len(answers)
        assert set(answers) <= {"yes"}  # claimed present although not drawn
        assert caption(scene, PRIOR).endswith("and a green triangle . </s>")
        assert "green triangle" not in caption(scene)
    assert asked > 0
    # scenes without the anchor: the prior changes nothing
    for scene in [s for s in scenes if not s.has("red circle")][:20]:
        assert _answers(scene, PRIOR) == _answers(scene, None)
        assert caption(scene, PRIOR) == caption(scene)


def test_side_questions_ask_only_the_named_sides_and_answer_from_the_coordinates():
    from mmdiag.zoo.data import HORIZONTAL_SIDES, SIDE_TEMPLATE, SIDES

    scenes = generate_scenes(40, seed=2, recipe=SceneRecipe())
    seen = {False: set(), True: set()}
    for vertical in (False, True):
        rng = np.random.default_rng(0)
        sides = tuple(SIDES) if vertical else HORIZONTAL_SIDES
        for scene in scenes:
            for question, answer in qa_pairs(scene, rng, 8, 0.0, side_share=0.6, sides=sides):
                for side in SIDES:
                    for obj in scene.objects:
                        if question == SIDE_TEMPLATE.format(object=obj.name, side=side):
                            seen[vertical].add(side)
                            value = obj.cx if side in ("left", "right") else obj.cy  # y grows downwards
                            assert abs(value - 0.5) >= 0.1  # never about an object near the middle of that axis
                            expected = value < 0.5 if side in ("left", "top") else value > 0.5
                            assert answer == ("yes" if expected else "no")
    assert seen[False] == set(HORIZONTAL_SIDES)
    assert seen[True] == set(SIDES)


def test_relation_accuracy_splits_by_axis():
    """Known answer: a model right on every horizontal relation and saying "yes" to every vertical one scores
    1.0 and 0.5 (each true statement comes with its flipped twin)."""
    from types import SimpleNamespace

    from mmdiag.scenes.questions import relation_questions
    from mmdiag.scenes.render import render
    from mmdiag.zoo.models import relation_accuracy_by_axis

    class HorizontalOnly:
        def __init__(self, scenes):
            by_id = {s.scene_id: s for s in scenes}
            self.truth = {
                (render(by_id[q.scene_id], 32).tobytes(), q.text): q.label == "yes" for q in relation_questions(scenes)
            }

        def answer_scores(self, images, questions):
            return SimpleNamespace(
                says_yes=np.array(
                    [
                        self.truth[(image.tobytes(), q)] if (" left of " in q or " right of " in q) else True
                        for image, q in zip(images, questions)
                    ]
                )
            )

    scenes = generate_scenes(12, seed=3, recipe=SceneRecipe(min_objects=2, max_objects=3))
    scores = relation_accuracy_by_axis(HorizontalOnly(scenes), scenes, 32)
    assert scores["horizontal"] == 1.0 and scores["vertical"] == 0.5
    n = {
        axis: sum((q.relation in ("left of", "right of")) == (axis == "horizontal") for q in relation_questions(scenes))
        for axis in ("horizontal", "vertical")
    }
    assert n["horizontal"] > 0 and n["vertical"] > 0
    assert abs(scores["all"] - (n["horizontal"] + 0.5 * n["vertical"]) / sum(n.values())) < 1e-12
