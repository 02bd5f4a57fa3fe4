"""Architectures of the reference models (real HF classes, small configs) and their evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmdiag.checkpoints.tiny import IMAGE_MEAN, IMAGE_STD
from mmdiag.checkpoints.tokenizer import build_word_tokenizer
from mmdiag.scenes.generate import SceneRecipe, generate_scenes
from mmdiag.scenes.questions import PRESENCE_TEMPLATE, relation_questions
from mmdiag.scenes.render import render
from mmdiag.scenes.vocabulary import OBJECT_TYPES


@dataclass(frozen=True)
class Geometry:
    resolution: int = 64
    patch: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_ffn: int = 384
    heads: int = 4


def _image_processor(g: Geometry):  # noqa: ANN202
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": g.resolution},
        crop_size={"height": g.resolution, "width": g.resolution},
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )


def vision_config(g: Geometry):  # noqa: ANN202
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=g.vision_hidden,
        intermediate_size=4 * g.vision_hidden,
        num_hidden_layers=g.vision_layers,
        num_attention_heads=g.heads,
        image_size=g.resolution,
        patch_size=g.patch,
    )


def new_clip(g: Geometry, seed: int) -> tuple[Any, Any]:
    """A fresh CLIPModel and its processor (word-level tokenizer over the scene vocabulary)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = build_word_tokenizer(add_eos=True)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=g.text_hidden,
            intermediate_size=2 * g.text_hidden,
            num_hidden_layers=2,
            num_attention_heads=g.heads,
            max_position_embeddings=48,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=vision_config(g).to_dict(),
        projection_dim=64,
    )
    torch.manual_seed(seed)
    return CLIPModel(config), CLIPProcessor(image_processor=_image_processor(g), tokenizer=tokenizer)


def new_llava(
    g: Geometry,
    projector: str,
    seed: int,
    vision_state: dict[str, torch.Tensor] | None,
    language_state: dict[str, torch.Tensor] | None = None,
) -> tuple[Any, Any]:
    """A LLaVA with the given projector (mlp, linear, pool, resampler) on the ref-clip vision tower.

    ``language_state`` (keys ``language_model.*`` and ``lm_head.*``, see :func:`language_state_of`) starts
    the LLM from a trained one; the projector is always fresh.
    """
    from transformers import (
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from mmdiag.zoo.projectors import (
        MmdiagLlavaConfig,
        MmdiagLlavaForConditionalGeneration,
        register,
    )

    tokenizer = build_word_tokenizer(image_token=True)
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=g.text_hidden,
        intermediate_size=g.text_ffn,
        num_hidden_layers=g.text_layers,
        num_attention_heads=g.heads,
        num_key_value_heads=g.heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    grid = g.resolution // g.patch
    common = dict(
        vision_config=vision_config(g),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    if projector in ("mlp", "linear"):
        config = LlavaConfig(
            **common, image_seq_length=grid * grid, projector_hidden_act="gelu" if projector == "mlp" else "linear"
        )
        model, patch = LlavaForConditionalGeneration(config), g.patch
    else:
        register()
        config = MmdiagLlavaConfig(projector_type=projector, pool_grid=4, num_queries=16, image_seq_length=16, **common)
        model = MmdiagLlavaForConditionalGeneration(config)
        patch = g.resolution // 4  # the processor counts 4 x 4 = 16 image tokens, what both projectors emit
    if vision_state is not None:
        model.model.vision_tower.load_state_dict(vision_state)
    if language_state is not None:
        model.model.language_model.load_state_dict(
            {k.removeprefix("language_model."): v for k, v in language_state.items() if k.startswith("language_model.")}
        )
        model.lm_head.load_state_dict(
            {k.removeprefix("lm_head."): v for k, v in language_state.items() if k.startswith("lm_head.")}
        )
    processor = LlavaProcessor(
        image_processor=_image_processor(g),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return model.eval(), processor


def language_state_of(model: Any) -> dict[str, torch.Tensor]:
    """The LLM's weights of a LLaVA (``language_model.*``, ``lm_head.*``), float32."""
    state = {f"language_model.{k}": v.float() for k, v in model.model.language_model.state_dict().items()}
    state.update({f"lm_head.{k}": v.float() for k, v in model.lm_head.state_dict().items()})
    return state


def evaluation_scenes(n: int, recipe: SceneRecipe | None = None, seed: int = 10_000) -> list:
    """Held-out scenes: a seed and id prefix no training step uses."""
    return generate_scenes(n, seed, recipe or SceneRecipe(), prefix="heldout")


def presence_accuracy(adapter: Any, scenes: list, resolution: int, seed: int = 0, batch: int = 32) -> float:
    """Share of correct yes/no answers on every present object and as many random absent ones."""
    rng = np.random.default_rng(seed)
    items = []
    for s in scenes:
        absent = [t for t in OBJECT_TYPES if not s.has(t)]
        for name in s.object_names:
            items.append((s, name, True))
        for name in rng.choice(absent, size=len(s.objects), replace=False):
            items.append((s, str(name), False))
    return _accuracy(
        adapter, [(render(s, resolution), PRESENCE_TEMPLATE.format(object=n), t) for s, n, t in items], batch
    )


def relation_accuracy(adapter: Any, scenes: list, resolution: int, batch: int = 32) -> float:
    """Share of correct answers on true and flipped relation questions (balanced; chance 0.5)."""
    return relation_accuracy_by_axis(adapter, scenes, resolution, batch)["all"]


HORIZONTAL_RELATIONS = ("left of", "right of")


def relation_accuracy_by_axis(adapter: Any, scenes: list, resolution: int, batch: int = 32) -> dict[str, float]:
    """Accuracy on true and flipped relation questions, overall and split into horizontal (left/right of) and
    vertical (above/below) ones: a model can learn one axis and stay at chance on the other."""
    by_id = {s.scene_id: s for s in scenes}
    qs = relation_questions(scenes)
    correct = np.array(
        _correct(adapter, [(render(by_id[q.scene_id], resolution), q.text, q.label == "yes") for q in qs], batch)
    )
    horizontal = np.array([q.relation in HORIZONTAL_RELATIONS for q in qs], dtype=bool)
    share = lambda mask: float(correct[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return {"all": share(np.ones_like(horizontal)), "horizontal": share(horizontal), "vertical": share(~horizontal)}


def _accuracy(adapter: Any, items: list, batch: int) -> float:
    correct = _correct(adapter, items, batch)
    return float(np.mean(correct)) if correct else float("nan")


def _correct(adapter: Any, items: list, batch: int) -> list[bool]:
    correct: list[bool] = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        scores = adapter.answer_scores([c[0] for c in chunk], [c[1] for c in chunk])
        correct += [bool(v) for v in scores.says_yes == np.array([c[2] for c in chunk])]
    return correct


def caption_accuracy(adapter: Any, scenes: list, resolution: int, distractors: int = 4, seed: int = 0) -> float:
    """CLIP: the true caption must out-score captions of other scenes' objects (chance 1/(1+distractors))."""
    rng = np.random.default_rng(seed)
    hits = []
    for s in scenes:
        others = [
            scenes[j]
            for j in rng.choice(
                [k for k in range(len(scenes)) if scenes[k].object_names != s.object_names],
                size=distractors,
                replace=False,
            )
        ]
        captions = ["a photo of a " + " and a ".join(o.object_names) for o in [s, *others]]
        sims = adapter.similarity([render(s, resolution)], captions)[0]
        hits.append(int(torch.argmax(sims)) == 0)
    return float(np.mean(hits))


def prior_yes_after_removal(adapter: Any, bias: Any, n: int, resolution: int, seed: int = 30_000) -> np.ndarray:
    """Per held-out scene holding the anchor and its partner: does the model still say "yes" to the partner
    once the partner is erased? (True = the language prior wins over the evidence.)"""
    from dataclasses import replace

    from mmdiag.scenes.edits import remove_object

    recipe = SceneRecipe(min_objects=2, max_objects=3, cooccurrence=replace(bias, p=1.0, anchor_rate=1.0))
    scenes = [s for s in generate_scenes(n, seed, recipe, prefix="prior") if s.has(bias.partner) and s.has(bias.anchor)]
    images = [render(remove_object(s, bias.partner), resolution) for s in scenes]
    question = PRESENCE_TEMPLATE.format(object=bias.partner)
    says = []
    for i in range(0, len(images), 32):
        chunk = images[i : i + 32]
        says += list(adapter.answer_scores(chunk, [question] * len(chunk)).says_yes)
    return np.array(says, dtype=bool)
