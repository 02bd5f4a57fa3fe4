"""Building, caching, shipping and locating reference models.

``build(name)`` trains a model from its recipe (building the models it depends on first), evaluates it
on held-out scenes, and saves an ordinary checkpoint (model + processor + tokenizer) plus ``card.json``
(recipe, steps, seconds, measured accuracies). Shipped models live in the package (``zoo/weights``),
stored in half precision and loaded back in float32; ``locate(name)`` prefers them, then the cache.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmdiag.errors import MmdiagError
from mmdiag.zoo.card import CARD
from mmdiag.zoo.recipes import RECIPES, ZooRecipe

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
EVAL_SCENES = 200


def cache_dir() -> Path:
    return Path(os.environ.get("MMDIAG_HOME", Path.home() / ".cache" / "mmdiag")) / "zoo"


def locate(name: str) -> Path | None:
    """The folder of a shipped or already-built model, or None."""
    for folder in (SHIPPED_DIR / name, cache_dir() / name):
        if (folder / "config.json").is_file():
            return folder
    return None


ZOO_PREFIX = "zoo:"


def resolve_model_name(spec: str) -> str:
    """A zoo model named as ``zoo:NAME`` or ``NAME`` (when no such folder exists here) -> its folder; any other
    string unchanged. A zoo model that is neither shipped nor built is a one-line error naming the build command."""
    name = spec.removeprefix(ZOO_PREFIX)
    if not spec.startswith(ZOO_PREFIX) and (name not in RECIPES or Path(spec).exists()):
        return spec
    recipe_of(name)  # an unknown name is refused with the list of zoo models
    folder = locate(name)
    if folder is None:
        raise MmdiagError(f"zoo model '{name}' is not shipped and not built here: run `mmdiag zoo build {name}` first")
    return str(folder)


def recipe_of(name: str) -> ZooRecipe:
    if name not in RECIPES:
        raise MmdiagError(f"unknown zoo model '{name}': choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def build(
    name: str,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    rebuild: bool = False,
    recipe: ZooRecipe | None = None,
    clip_dir: Path | None = None,
    lm_dir: Path | None = None,
    eval_scenes: int = EVAL_SCENES,
) -> Path:
    """Train ``name`` (and what it depends on) unless a built copy exists; returns its folder.

    ``recipe``, ``clip_dir`` and ``lm_dir`` replace the registered recipe, the ref-clip and the language model it
    starts from (tests build miniatures this way).
    """
    from mmdiag.zoo import models, train

    recipe = recipe or recipe_of(name)
    out = Path(out_dir) if out_dir else cache_dir() / name
    if not rebuild and (out / "config.json").is_file():
        return out
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if recipe.kind == "clip":
        model, processor = models.new_clip(recipe.geometry, recipe.seed)
        log = train.train_clip(
            model, processor, recipe.scenes, recipe.optim, recipe.seed, recipe.geometry.resolution, progress
        )
        return finish(name, recipe, model, processor, log, out, start, eval_scenes)
    clip_dir = clip_dir or locate(recipe.depends_on) or build(recipe.depends_on, progress=progress)
    clip = _load_clip(clip_dir)
    language_state = None
    if recipe.language_model_from:
        base = lm_dir or locate(recipe.language_model_from) or build(recipe.language_model_from, progress=progress)
        language_state = models.language_state_of(_load_llava(base))
    if recipe.kind == "blip2":
        from mmdiag.zoo import blip2

        model, processor = blip2.new_blip2(recipe.geometry, recipe.seed, language_state)
        model.vision_model.load_state_dict(blip2.vision_state_from_clip(clip.vision_model.state_dict()))
        vision_log = blip2.distill_vision(
            model, processor, clip.vision_model, recipe.optim, recipe.seed, recipe.geometry.resolution, progress
        )
        extra = {
            "vision_distill_seconds": round(vision_log.seconds, 1),
            "vision_feature_r2": blip2.feature_agreement(
                model, processor, clip.vision_model, recipe.geometry.resolution
            ),
        }
    else:
        model, processor = models.new_llava(
            recipe.geometry, recipe.projector, recipe.seed, clip.vision_model.state_dict(), language_state
        )
    log = train.train_phases(
        model,
        processor,
        recipe.scenes,
        recipe.phases,
        recipe.seed,
        recipe.geometry.resolution,
        caption_share=recipe.caption_share,
        prior=recipe.annotation_prior,
        progress=progress,
        desc=name,
    )
    return finish(name, recipe, model, processor, log, out, start, eval_scenes, extra)


def finish(
    name: str,
    recipe: ZooRecipe,
    model: Any,
    processor: Any,
    log: Any,
    out: Path,
    start: float,
    eval_scenes: int = EVAL_SCENES,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a trained model in half precision, evaluate what was saved on held-out scenes, write its card."""
    from mmdiag.adapters import load_adapter
    from mmdiag.zoo import models

    save_half(model, processor, out)
    adapter = load_adapter(str(out))  # evaluate exactly what is saved: half-precision weights, read back
    scenes = models.evaluation_scenes(eval_scenes)
    resolution = recipe.geometry.resolution
    if recipe.kind == "clip":
        scores = {"caption_accuracy": models.caption_accuracy(adapter, scenes, resolution)}
    else:
        from mmdiag.zoo.recipes import BIAS

        relations = models.relation_accuracy_by_axis(adapter, scenes[: max(1, len(scenes) * 2 // 5)], resolution)
        scores = {
            "presence_accuracy": models.presence_accuracy(adapter, scenes, resolution),
            "relation_accuracy": relations["all"],
            "relation_accuracy_horizontal": relations["horizontal"],
            "relation_accuracy_vertical": relations["vertical"],
            # the planted prior's probe, measured on every LLaVA so the biased one can be compared
            "prior_yes_after_removal": float(
                models.prior_yes_after_removal(adapter, BIAS, eval_scenes, resolution).mean()
            ),
        }
    first, last = log.smoothed()
    card = {
        "name": name,
        "description": recipe.description,
        "recipe": _jsonable(asdict(recipe)),
        "train_seconds": round(log.seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "loss_start": first,
        "loss_end": last,
        "heldout_scenes": eval_scenes,
        **scores,
        "parameters": sum(p.numel() for p in model.parameters()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        **(extra or {}),
    }
    (out / CARD).write_text(json.dumps(card, indent=2))
    return out


def save_half(model: Any, processor: Any, out: Path) -> None:
    """Save model + processor; weights stored as float16 safetensors, config kept float32 so loading upcasts."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    for file in out.glob("*.safetensors"):
        tensors = load_file(file)
        save_file(
            {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()},
            str(file),
            metadata={"format": "pt"},
        )


def _load_llava(folder: Path) -> Any:
    from mmdiag.adapters import load_adapter

    return load_adapter(str(folder)).model


def _load_clip(folder: Path) -> Any:
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(folder, dtype=torch.float32)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def cards() -> list[dict[str, Any]]:
    """Model cards of every recipe (measured numbers where the model is built)."""
    out = []
    for name, recipe in RECIPES.items():
        folder = locate(name)
        card = json.loads((folder / CARD).read_text()) if folder and (folder / CARD).is_file() else {}
        out.append(
            {
                "name": name,
                "description": recipe.description,
                "shipped": (SHIPPED_DIR / name / "config.json").is_file(),
                "built": folder is not None,
                **{k: v for k, v in card.items() if k not in ("recipe", "description", "name")},
            }
        )
    return out
