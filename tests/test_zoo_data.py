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
