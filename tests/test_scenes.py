"""The synthetic world against its own exact ground truth: generation, rendering, edits, blind inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdiag import blind_inputs as blind
from mmdiag.scenes.edits import (
    EditError,
    insert_object,
    mirror,
    remove_object,
    swap_colour,
    swap_shape,
)
from mmdiag.scenes.generate import (
    Cooccurrence,
    SceneRecipe,
    generate_scene,
    generate_scenes,
)
from mmdiag.scenes.model import RELATION_MARGIN, Scene, SceneObject, relations_between
from mmdiag.scenes.render import background, object_mask, render
from mmdiag.scenes.vocabulary import COLOURS

RES = 96
MIXED = SceneRecipe(min_objects=1, max_objects=4, background="mixed")


def pixels(scene: Scene) -> np.ndarray:
    return np.asarray(render(scene, RES))


def test_same_seed_same_scene_and_pixels():
    a, b = generate_scenes(10, seed=5, recipe=MIXED), generate_scenes(10, seed=5, recipe=MIXED)
    assert a == b
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b))
    assert generate_scene(MIXED, 5, 7) == a[7]  # any scene rebuilds alone from (recipe, seed, index)
    assert generate_scenes(10, seed=6, recipe=MIXED) != a


def test_objects_are_distinct_in_bounds_and_apart():
    for scene in generate_scenes(200, seed=1, recipe=MIXED):
        assert 1 <= len(scene.objects) <= 4
        assert len(set(scene.object_names)) == len(scene.objects)
        masks = [object_mask(o, RES) for o in scene.objects]
        for o in scene.objects:
            x0, y0, x1, y1 = o.bbox()
            assert x0 >= 0 and x1 <= 1 and y0 >= 0 and y1 <= 1
        total = np.sum(masks, axis=0) if masks else np.zeros((RES, RES))
        assert total.max() <= 1  # no pixel painted twice: objects never overlap


def test_each_object_paints_its_colour_inside_its_bbox_only():
    for scene in generate_scenes(40, seed=2, recipe=SceneRecipe(background="plain", max_objects=4)):
        image = pixels(scene)
        for o in scene.objects:
            colour_pixels = np.all(image == COLOURS[o.colour], axis=-1)
            ys, xs = np.nonzero(colour_pixels & object_mask(o, RES))
            x0, y0, x1, y1 = (v * RES for v in o.bbox())
            assert len(xs) > 0
            assert (
                xs.min() >= np.floor(x0) - 1
                and xs.max() <= np.ceil(x1)
                and ys.min() >= np.floor(y0) - 1
                and ys.max() <= np.ceil(y1)
            )
        truth = scene.ground_truth(RES)
        for gt, o in zip(truth["objects"], scene.objects):
            assert gt["centre"] == [round(o.cx * RES, 2), round(o.cy * RES, 2)]
            assert gt["grid_cell"] == [min(int(o.cy * 3), 2), min(int(o.cx * 3), 2)]


def test_relations_need_a_margin_and_are_antisymmetric():
    a = SceneObject("red", "circle", "small", 0.30, 0.50)
    close = SceneObject("blue", "square", "small", 0.30 + RELATION_MARGIN * 0.9, 0.50)
    far = SceneObject("blue", "square", "small", 0.70, 0.20)
    assert relations_between(a, close) == []
    assert relations_between(a, far) == ["left of", "below"]
    assert relations_between(far, a) == ["right of", "above"]
    scene = Scene("s", (a, far))
    assert {r.text() for r in scene.relations()} == {
        "red circle left of blue square",
        "red circle below blue square",
        "blue square right of red circle",
        "blue square above red circle",
    }


def test_removed_object_pixels_are_gone_and_nothing_else_changed():
    for scene in generate_scenes(30, seed=3, recipe=SceneRecipe(min_objects=2, max_objects=4, background="mixed")):
        target = scene.objects[0]
        edited = remove_object(scene, target.name)
        before, after = pixels(scene), pixels(edited)
        mask = object_mask(target, RES)
        assert not edited.has(target.name) and len(edited.objects) == len(scene.objects) - 1
        assert np.array_equal(after[mask], background(scene, RES)[mask])  # back to the background
        assert np.array_equal(after[~mask], before[~mask])  # every other pixel identical
        assert target.name not in {r.subject for r in edited.relations()} | {r.object for r in edited.relations()}
        assert edited.scene_id.endswith(f"+remove:{target.name}")


def test_swaps_change_only_the_object_and_refuse_clashes():
    scene = Scene(
        "s", (SceneObject("red", "circle", "large", 0.3, 0.3), SceneObject("blue", "square", "small", 0.7, 0.7))
    )
    recoloured = swap_colour(scene, "red circle", "green")
    mask = object_mask(scene.objects[0], RES)
    before, after = pixels(scene), pixels(recoloured)
    assert np.all(after[mask] == COLOURS["green"]) and np.array_equal(after[~mask], before[~mask])
    assert recoloured.object_names == ["green circle", "blue square"]
    reshaped = swap_shape(scene, "red circle", "triangle")
    union = mask | object_mask(reshaped.objects[0], RES)
    assert np.array_equal(pixels(reshaped)[~union], before[~union])
    blue_circle = swap_colour(scene, "red circle", "blue")
    with pytest.raises(EditError, match="already has a blue square"):
        swap_shape(blue_circle, "blue circle", "square")
    with pytest.raises(EditError, match="has no green circle"):
        swap_colour(scene, "green circle", "red")


def test_insert_adds_pixels_only_where_the_new_object_is():
    scene = generate_scenes(1, seed=4, recipe=SceneRecipe(min_objects=1, max_objects=1))[0]
    colour, shape = ("green", "triangle") if not scene.has("green triangle") else ("red", "square")
    edited = insert_object(scene, colour, shape, seed=1)
    new = edited.get(f"{colour} {shape}")
    mask = object_mask(new, RES)
    assert np.array_equal(pixels(edited)[~mask], pixels(scene)[~mask])
    assert np.all(pixels(edited)[mask] == COLOURS[colour])
    with pytest.raises(EditError, match="overlap"):
        insert_object(
            scene,
            "yellow",
            "circle" if scene.objects[0].name != "yellow circle" else "square",
            at=(scene.objects[0].cx, scene.objects[0].cy),
        )


@pytest.mark.parametrize(
    "axis, flipped, kept",
    [
        ("horizontal", {"left of": "right of", "right of": "left of"}, ("above", "below")),
        ("vertical", {"above": "below", "below": "above"}, ("left of", "right of")),
    ],
)
def test_mirror_flips_relations_and_the_image(axis, flipped, kept):
    for scene in generate_scenes(30, seed=5, recipe=SceneRecipe(min_objects=2, max_objects=4, background="textured")):
        edited = mirror(scene, axis)
        before = {(r.subject, r.relation, r.object) for r in scene.relations()}
        after = {(r.subject, r.relation, r.object) for r in edited.relations()}
        expected = {(s, flipped.get(rel, rel), o) for s, rel, o in before}
        assert after == expected
        assert {r for r in after if r[1] in kept} == {r for r in before if r[1] in kept}
        assert mirror(edited, axis).objects == scene.objects  # involution, exactly
        if axis == "horizontal":  # circles and squares are symmetric, triangles too left-right
            same = np.mean(pixels(edited) == pixels(scene)[:, ::-1])
            assert same > 0.99, same


def test_cooccurrence_prior_is_planted_at_the_requested_rate():
    prior = Cooccurrence("red circle", "green triangle", p=0.9, anchor_rate=0.5)
    scenes = generate_scenes(600, seed=0, recipe=SceneRecipe(min_objects=2, max_objects=3, cooccurrence=prior))
    with_anchor = [s for s in scenes if s.has("red circle")]
    rate = np.mean([s.has("green triangle") for s in with_anchor])
    assert abs(len(with_anchor) / len(scenes) - 0.5) < 0.07
    assert abs(rate - 0.9) < 0.06  # > 3 binomial standard errors at n ≈ 300
    plain = generate_scenes(600, seed=0, recipe=SceneRecipe(min_objects=2, max_objects=3))
    plain_rate = np.mean([s.has("green triangle") for s in plain if s.has("red circle")])
    assert plain_rate < 0.4


def test_blind_inputs():
    image = render(generate_scenes(1, seed=1)[0], 64)
    flat = np.asarray(blind.mean_colour(image))
    assert np.all(flat == flat[0, 0])
    assert np.allclose(flat[0, 0], np.asarray(image).reshape(-1, 3).mean(0), atol=0.5)
    assert np.array_equal(
        np.asarray(blind.gaussian_noise((32, 32), seed=3)), np.asarray(blind.gaussian_noise((32, 32), seed=3))
    )
    assert np.asarray(blind.blank((8, 8))).std() == 0


def test_vcd_noise_follows_the_paper_schedule():
    t, steps = 500, 1000
    betas = 1 / (1 + np.exp(-np.linspace(-6, 6, steps))) * (5e-3 - 1e-5) + 1e-5  # independent numpy version
    alpha_bar = np.prod(1 - betas[: t + 1])
    assert blind.vcd_alpha_bar(t) == pytest.approx(alpha_bar, rel=1e-9)
    v = torch.ones(1, 3, 8, 8)
    noised = blind.vcd_noise(v, t=t, seed=0)
    eps = torch.randn(v.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noised, alpha_bar**0.5 * v + (1 - alpha_bar) ** 0.5 * eps)
    with pytest.raises(ValueError):
        blind.vcd_alpha_bar(1000)
