"""The zoo's machinery on miniatures (a minute of CPU): training lowers the loss, checkpoints load by
path like any hub model (half-precision weights read back in float32), every projector variant keeps
LLaVA's module tree for the adapter."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import integrity_suite

from mmdiag.adapters import load_adapter
from mmdiag.cli import main
from mmdiag.zoo.build import build
from mmdiag.zoo.models import Geometry
from mmdiag.zoo.recipes import RECIPES, SIDES, TrainPhase
from mmdiag.zoo.train import OptimSpec

MINI = Geometry(
    resolution=32, patch=8, vision_hidden=32, vision_layers=1, text_hidden=32, text_layers=2, text_ffn=64, heads=2
)


@pytest.fixture(scope="module")
def mini_clip(tmp_path_factory):
    recipe = replace(RECIPES["ref-clip"], geometry=MINI, optim=OptimSpec(steps=60, batch=16, lr=3e-3, warmup=5))
    return build("ref-clip", tmp_path_factory.mktemp("zoo") / "clip", recipe=recipe, progress=False, eval_scenes=20)


def test_clip_training_lowers_the_loss_and_loads(mini_clip):
    card = json.loads((mini_clip / "card.json").read_text())
    assert card["loss_end"] < card["loss_start"]
    assert 0 <= card["caption_accuracy"] <= 1
    adapter = load_adapter(str(mini_clip))
    assert adapter.family == "clip" and next(adapter.model.parameters()).dtype.is_floating_point


@pytest.fixture(scope="module")
def mini_lm(mini_clip, tmp_path_factory):
    """The shared language model, in miniature (a one-object curriculum, then every kind of turn)."""
    recipe = replace(
        RECIPES["ref-llava-lm"],
        geometry=MINI,
        phases=(
            TrainPhase(OptimSpec(steps=25, batch=8, lr=3e-3, warmup=5), curriculum_steps=10),
            TrainPhase(OptimSpec(steps=15, batch=8, lr=1e-3, warmup=5), relation_share=0.45, sides=tuple(SIDES)),
        ),
    )
    return build(
        "ref-llava-lm",
        tmp_path_factory.mktemp("zoo") / "lm",
        recipe=recipe,
        clip_dir=mini_clip,
        progress=False,
        eval_scenes=10,
    )


def test_variants_start_from_the_shared_language_model(mini_clip, mini_lm, tmp_path):
    """Only the projector is fresh: the LLM weights equal the shared model's before training."""
    import torch

    from mmdiag.zoo.models import language_state_of, new_llava

    base = load_adapter(str(mini_lm)).model
    model, _ = new_llava(MINI, "pool", 0, None, language_state_of(base))
    for key, value in language_state_of(base).items():
        assert torch.equal(language_state_of(model)[key], value), key


def test_alignment_phase_trains_the_projector_only(mini_lm):
    """LLaVA's stage 1: the projector moves, the language model does not."""
    import torch

    from mmdiag.scenes.generate import SceneRecipe
    from mmdiag.zoo.models import language_state_of, new_llava
    from mmdiag.zoo.train import train_llava

    base = language_state_of(load_adapter(str(mini_lm)).model)
    model, processor = new_llava(MINI, "mlp", 0, None, base)
    before = {k: v.clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
    train_llava(
        model,
        processor,
        SceneRecipe(),
        OptimSpec(steps=3, batch=4, lr=1e-2, warmup=1),
        0,
        MINI.resolution,
        progress=False,
        train_language=False,
    )
    for key, value in language_state_of(model).items():
        assert torch.equal(value, base[key]), key
    assert any(not torch.equal(v, before[k]) for k, v in model.model.multi_modal_projector.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # switched back on afterwards


@pytest.mark.parametrize(
    "projector, tokens, grid",
    [("mlp", 16, (4, 4)), ("linear", 16, (4, 4)), ("pool", 16, (4, 4)), ("resampler", 16, None)],
)
def test_llava_variants_train_save_and_load(mini_clip, mini_lm, tmp_path, projector, tokens, grid):
    recipe = replace(
        RECIPES["ref-llava-mlp"],
        projector=projector,
        geometry=MINI,
        phases=(
            TrainPhase(OptimSpec(steps=20, batch=8, lr=3e-3, warmup=5), train_language=False),
            TrainPhase(OptimSpec(steps=20, batch=8, lr=1e-3, warmup=5)),
        ),
    )
    folder = build(
        f"ref-llava-{projector}",
        tmp_path / projector,
        recipe=recipe,
        clip_dir=mini_clip,
        lm_dir=mini_lm,
        progress=False,
        eval_scenes=10,
    )
    card = json.loads((folder / "card.json").read_text())
    assert card["loss_end"] < card["loss_start"], card
    adapter = load_adapter(str(folder))
    stages = adapter.feature_stages([__import__("PIL.Image", fromlist=["Image"]).new("RGB", (32, 32))])
    assert stages[-1].tokens.shape[1] == tokens and stages[-1].grid == grid
    assert str(next(adapter.model.parameters()).dtype) == "torch.float32"
    assert (
        main(
            [
                "audit",
                "--model",
                str(folder),
                "--out",
                str(tmp_path / "run"),
                "--n-examples",
                "4",
                "--no-progress",
                "--probes",
                "hallucination,attention",
                "--suite",
                integrity_suite(),
            ]
        )
        == 0
    )


def test_blip2_trains_on_the_shared_language_model_saves_and_loads(mini_clip, mini_lm, tmp_path):
    """ref-blip2 in miniature: vision tower mapped from CLIP and distilled (agreement rises), the LLM carried over
    (rows permuted to BLIP-2's token ids), the Q-Former trained; it loads as a BLIP-2 and audits."""
    recipe = replace(
        RECIPES["ref-blip2"],
        geometry=MINI,
        optim=OptimSpec(steps=30, batch=8, lr=3e-3, warmup=5),
        phases=(
            TrainPhase(OptimSpec(steps=20, batch=8, lr=3e-3, warmup=5), train_language=False),
            TrainPhase(OptimSpec(steps=20, batch=8, lr=1e-3, warmup=5)),
        ),
    )
    folder = build(
        "ref-blip2",
        tmp_path / "blip2",
        recipe=recipe,
        clip_dir=mini_clip,
        lm_dir=mini_lm,
        progress=False,
        eval_scenes=10,
    )
    card = json.loads((folder / "card.json").read_text())
    assert card["loss_end"] < card["loss_start"], card
    assert card["vision_feature_r2"] > 0.5, card
    adapter = load_adapter(str(folder))
    assert adapter.family == "blip2"
    assert (
        main(
            [
                "audit",
                "--model",
                str(folder),
                "--out",
                str(tmp_path / "run"),
                "--n-examples",
                "4",
                "--no-progress",
                "--probes",
                "hallucination,attention",
                "--suite",
                integrity_suite(),
            ]
        )
        == 0
    )


def test_blip2_language_model_equals_the_shared_one_word_for_word(mini_lm):
    """Same words in, same hidden states out, although BLIP-2's tokenizer numbers <image> differently."""
    import torch

    from mmdiag.zoo.blip2 import new_blip2
    from mmdiag.zoo.models import language_state_of

    llava = load_adapter(str(mini_lm))
    model, processor = new_blip2(MINI, 0, language_state_of(llava.model))
    text = "USER: Is there a red circle in the image ? ASSISTANT: Yes"
    ours = model.language_model.model(
        input_ids=processor.tokenizer(text, return_tensors="pt").input_ids
    ).last_hidden_state
    theirs = llava.model.model.language_model(
        input_ids=llava.processor.tokenizer(text, return_tensors="pt").input_ids
    ).last_hidden_state
    assert processor.tokenizer.convert_tokens_to_ids("<image>") != llava.processor.tokenizer.convert_tokens_to_ids(
        "<image>"
    )
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_zoo_ls_lists_every_recipe(capsys):
    assert main(["zoo", "ls"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_unknown_zoo_model(capsys):
    assert main(["zoo", "build", "ref-gpt"]) == 2
    assert "unknown zoo model 'ref-gpt'" in capsys.readouterr().err


def test_shipped_ref_clip_meets_its_target():
    """The shipped weights (fp16 on disk) pick the right caption among five on fresh held-out scenes
    (target >= 0.90; its card measured 0.96 on 200 scenes; chance 0.20)."""
    from mmdiag.zoo.build import locate
    from mmdiag.zoo.models import caption_accuracy, evaluation_scenes

    folder = locate("ref-clip")
    assert folder is not None and folder.parent.name == "weights"
    adapter = load_adapter(str(folder))
    scenes = evaluation_scenes(60, seed=20_000)
    assert caption_accuracy(adapter, scenes, 64) >= 0.85


def test_shipped_default_llava_answers_from_the_image():
    """The shipped ref-llava-mlp (fp16 on disk) answers presence and horizontal-relation questions on fresh held-out
    scenes (card, 200 scenes: presence 0.950, left/right relations 0.902; these 50 scenes measured 0.956 and 0.895, so
    the thresholds sit ≥ 4 standard errors below). Vertical relations are at chance (README model card)."""
    from mmdiag.zoo.build import locate
    from mmdiag.zoo.models import (
        evaluation_scenes,
        presence_accuracy,
        relation_accuracy_by_axis,
    )

    folder = locate("ref-llava-mlp")
    assert folder is not None and folder.parent.name == "weights"
    adapter, scenes = load_adapter(str(folder)), evaluation_scenes(50, seed=20_000)
    assert presence_accuracy(adapter, scenes, 64) >= 0.9
    assert relation_accuracy_by_axis(adapter, scenes, 64)["horizontal"] >= 0.8


def test_shipped_blip2_answers_from_the_image():
    """The shipped ref-blip2 loads as a BLIP-2 and answers presence questions well above chance (card: 0.808; these
    50 scenes: 0.819)."""
    from mmdiag.zoo.build import locate
    from mmdiag.zoo.models import evaluation_scenes, presence_accuracy

    folder = locate("ref-blip2")
    assert folder is not None and folder.parent.name == "weights"
    adapter = load_adapter(str(folder))
    assert adapter.family == "blip2"
    assert presence_accuracy(adapter, evaluation_scenes(50, seed=20_000), 64) >= 0.72
