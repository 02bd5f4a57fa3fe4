"""Training the reference models on CPU: the CLIP (vision tower + contrastive), then LLaVA variants.

Recipe (after a prototype that found end-to-end training from scratch does not learn in minutes):
1. ``ref-clip``: a CLIPModel whose vision tower learns per-patch object type and patch row/column
   (auxiliary heads) while the towers learn the contrastive caption loss — the tower every LLaVA
   variant starts from, as LLaVA starts from CLIP.
2. LLaVA variants and BLIP-2: the ref-clip vision tower, frozen; projector (or Q-Former) + language model trained
   on packed yes/no turns (presence with near-miss negatives, left/right/top/bottom side, pairwise relations) and
   caption
   turns, loss on answers only, in phases (:func:`train_phases`: e.g. projector-only alignment, then both).
All randomness is seeded; the same recipe and seed rebuild the same weights on the same software stack.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from mmdiag.scenes.generate import SceneRecipe
from mmdiag.scenes.vocabulary import OBJECT_TYPES
from mmdiag.zoo.data import (
    BLIP2_TURNS,
    HORIZONTAL_SIDES,
    LLAVA_TURNS,
    AnnotationPrior,
    TurnFormat,
    images,
    pack,
    patch_targets,
    qa_pairs,
    scene_batch,
)


@dataclass(frozen=True)
class OptimSpec:
    steps: int
    batch: int
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: int = 50
    clip_norm: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class TrainLog:
    """Loss per step and wall time, reported in the model card."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def smoothed(self, window: int = 50) -> tuple[float, float]:
        """Mean loss over the first and the last ``window`` steps (at most a quarter of the run each)."""
        window = max(1, min(window, len(self.losses) // 4))
        return float(np.mean(self.losses[:window])), float(np.mean(self.losses[-window:]))


def _schedule(step: int, spec: OptimSpec) -> float:
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def run_steps(
    parameters: list[torch.nn.Parameter],
    spec: OptimSpec,
    loss_at: Callable[[int], torch.Tensor],
    desc: str,
    progress: bool = True,
) -> TrainLog:
    """AdamW with warm-up and cosine decay over ``spec.steps``; ``loss_at(step)`` builds one step's loss."""
    optimizer = torch.optim.AdamW(parameters, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, spec))
    log = TrainLog()
    start = time.perf_counter()
    bar = tqdm(range(spec.steps), desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, spec.clip_norm)
        optimizer.step()
        scheduler.step()
        log.losses.append(float(loss.detach()))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(log.losses[-10:]):.3f}")
    log.seconds = time.perf_counter() - start
    return log


# -- CLIP --------------------------------------------------------------------------------------

FEATURE_PENALTY = 0.05


class PatchHeads(torch.nn.Module):
    """Auxiliary per-patch heads: object type (or background), row, column."""

    def __init__(self, hidden: int, grid: int) -> None:
        super().__init__()
        self.object_type = torch.nn.Linear(hidden, len(OBJECT_TYPES) + 1)
        self.row = torch.nn.Linear(hidden, grid)
        self.col = torch.nn.Linear(hidden, grid)


def train_clip(
    model,
    processor,
    recipe: SceneRecipe,
    spec: OptimSpec,
    seed: int,
    resolution: int,  # noqa: ANN001
    progress: bool = True,
) -> TrainLog:
    """Contrastive caption loss plus per-patch auxiliary losses on the vision tower."""
    torch.manual_seed(seed)
    vision = model.config.vision_config
    grid = vision.image_size // vision.patch_size
    heads = PatchHeads(vision.hidden_size, grid)
    rows = torch.arange(grid).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid)
    ce = torch.nn.functional.cross_entropy

    def loss_at(step: int) -> torch.Tensor:
        scenes = scene_batch(recipe, seed, step, spec.batch)
        rng = np.random.default_rng([seed, step])
        captions = ["a photo of a " + " and a ".join(str(n) for n in rng.permutation(s.object_names)) for s in scenes]
        pixels = processor.image_processor(images=images(scenes, resolution), return_tensors="pt")["pixel_values"]
        text = processor.tokenizer(captions, return_tensors="pt", padding=True)
        out = model(
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            pixel_values=pixels,
            output_hidden_states=False,
            return_loss=True,
        )
        patches = model.vision_model(pixel_values=pixels).last_hidden_state[:, 1:]
        types = torch.as_tensor(np.stack([patch_targets(s, grid, resolution) for s in scenes]))
        aux = (
            ce(heads.object_type(patches).flatten(0, 1), types.flatten())
            + ce(heads.row(patches).flatten(0, 1), rows.repeat(len(scenes)))
            + ce(heads.col(patches).flatten(0, 1), cols.repeat(len(scenes)))
        )
        # keep the raw patch states well conditioned: without this they grow a large offset shared by every
        # token and image (norm ~43 vs differences ~0.1 after projection), which LLaVA's LLM then cannot read
        return out.loss + aux + FEATURE_PENALTY * patches.pow(2).mean()

    model.train()
    log = run_steps(list(model.parameters()) + list(heads.parameters()), spec, loss_at, "ref-clip", progress)
    model.eval()
    return log


# -- LLaVA -------------------------------------------------------------------------------------


def _parts(model, resolution: int) -> tuple[torch.nn.Module, list[torch.nn.Module], int, TurnFormat]:  # noqa: ANN001
    """Vision tower, language-model modules, image-token count and turn format of a LLaVA or a BLIP-2."""
    if hasattr(model, "qformer"):
        return model.vision_model, [model.language_model], int(model.config.num_query_tokens), BLIP2_TURNS
    n_tokens = int(
        model.model.get_image_features(pixel_values=torch.zeros(1, 3, resolution, resolution)).pooler_output[0].shape[0]
    )
    return model.model.vision_tower, [model.model.language_model, model.lm_head], n_tokens, LLAVA_TURNS


def train_llava(
    model,
    processor,
    recipe: SceneRecipe,
    spec: OptimSpec,
    seed: int,
    resolution: int,  # noqa: ANN001
    pairs_per_image: int = 8,
    relation_share: float = 0.35,
    curriculum_steps: int = 0,
    caption_share: float = 0.0,
    progress: bool = True,
    desc: str = "llava",
    step_offset: int = 0,
    prior: AnnotationPrior | None = None,
    train_language: bool = True,
    sides: Sequence[str] = HORIZONTAL_SIDES,
) -> TrainLog:
    """Projector (or Q-Former) + language model on packed yes/no turns; the vision tower stays frozen (and the
    language model too unless ``train_language``). Works on LLaVA and BLIP-2 alike.

    The first ``curriculum_steps`` use one-object scenes and presence questions only: there, even the
    uniform attention of an untrained LLM carries the answer (the mean image token names the object), which
    breaks the plateau at the answer prior (loss ln 2) that multi-object scenes sit on for hundreds of steps.
    """
    torch.manual_seed(seed)
    vision, language, n_tokens, turns = _parts(model, resolution)
    for p in vision.parameters():
        p.requires_grad_(False)
    if not train_language:
        for p in (p for module in language for p in module.parameters()):
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    image_token = getattr(getattr(processor, "image_token", None), "content", None) or "<image>"

    single = SceneRecipe(min_objects=1, max_objects=1, background=recipe.background, cooccurrence=None)

    def loss_at(step: int) -> torch.Tensor:
        warm = step < curriculum_steps
        step += step_offset  # a later training phase draws fresh scenes, never the earlier phase's
        scenes = scene_batch(single if warm else recipe, seed, step, spec.batch)
        rng = np.random.default_rng([seed, step, 1])
        pairs = [
            qa_pairs(s, rng, pairs_per_image, 0.0 if warm else relation_share, caption_share, prior=prior, sides=sides)
            for s in scenes
        ]
        batch = pack(processor.tokenizer, pairs, n_tokens, image_token, turns)
        pixels = processor.image_processor(images=images(scenes, resolution), return_tensors="pt")["pixel_values"]
        out = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, pixel_values=pixels, labels=batch.labels
        )
        return out.loss

    model.train()
    log = run_steps(trainable, spec, loss_at, desc, progress)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return log


def train_phases(
    model,
    processor,
    recipe: SceneRecipe,
    phases,
    seed: int,
    resolution: int,  # noqa: ANN001
    caption_share: float = 0.0,
    prior: AnnotationPrior | None = None,
    progress: bool = True,
    desc: str = "llava",
) -> TrainLog:
    """Run :class:`~mmdiag.zoo.recipes.TrainPhase` s in order on one model; one log over all of them."""
    log, offset = TrainLog(), 0
    for i, phase in enumerate(phases):
        part = train_llava(
            model,
            processor,
            recipe,
            phase.optim,
            seed,
            resolution,
            relation_share=phase.relation_share,
            curriculum_steps=phase.curriculum_steps,
            caption_share=caption_share,
            progress=progress,
            desc=f"{desc} {i + 1}/{len(phases)}",
            step_offset=offset,
            prior=prior,
            train_language=phase.train_language,
            sides=phase.sides,
        )
        log.losses += part.losses
        log.seconds += part.seconds
        offset += phase.optim.steps
    return log
