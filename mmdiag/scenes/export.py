"""Writing a browsable scene set: PNGs, a manifest with exact ground truth, POPE files, a contact sheet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from mmdiag.metrics.pope_io import write_pope_jsonl
from mmdiag.scenes.generate import SceneRecipe, generate_scenes
from mmdiag.scenes.model import Scene
from mmdiag.scenes.questions import (
    POPE_SPLITS,
    ObjectStatistics,
    caption_prompts,
    image_name,
    presence_questions,
    relation_questions,
)
from mmdiag.scenes.render import render

MANIFEST = "manifest.jsonl"
CONTACT_SHEET = "contact_sheet.png"


def contact_sheet(scenes: Sequence[Scene], resolution: int = 64, columns: int = 8, label: bool = True) -> Image.Image:
    """Thumbnails of the scenes in a grid, each captioned with its index."""
    rows = max(1, -(-len(scenes) // columns))
    pad = 14 if label else 0
    sheet = Image.new("RGB", (columns * (resolution + 4), rows * (resolution + 4 + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, scene in enumerate(scenes):
        x, y = (i % columns) * (resolution + 4), (i // columns) * (resolution + 4 + pad)
        sheet.paste(render(scene, resolution), (x + 2, y + 2))
        if label:
            draw.text((x + 2, y + resolution + 3), scene.scene_id.rsplit("-", 1)[-1], fill=(0, 0, 0))
    return sheet


def export_scene_set(
    out_dir: str | Path, n: int, seed: int = 0, recipe: SceneRecipe | None = None, resolution: int = 64
) -> dict[str, Path]:
    """Write ``n`` scenes and their question sets to ``out_dir``; returns the written files by role."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    recipe = recipe or SceneRecipe()
    scenes = generate_scenes(n, seed, recipe)
    with (out / MANIFEST).open("w", encoding="utf-8") as manifest:
        for scene in scenes:
            render(scene, resolution).save(out / "images" / image_name(scene))
            manifest.write(
                json.dumps(
                    {
                        "scene_id": scene.scene_id,
                        "image": f"images/{image_name(scene)}",
                        "resolution": resolution,
                        "scene": scene.to_dict(),
                        "ground_truth": scene.ground_truth(resolution),
                    }
                )
                + "\n"
            )
    written = {"manifest": out / MANIFEST}
    stats = ObjectStatistics.of(scenes)
    for split in POPE_SPLITS:
        written[f"pope_{split}"] = write_pope_jsonl(
            presence_questions(scenes, split, seed=seed, stats=stats), out / f"pope_{split}.jsonl"
        )
    written["relations"] = write_pope_jsonl(relation_questions(scenes), out / "relations.jsonl")
    captions = out / "captions.jsonl"
    captions.write_text("".join(json.dumps(c) + "\n" for c in caption_prompts(scenes)))
    written["captions"] = captions
    (out / "recipe.json").write_text(
        json.dumps({"seed": seed, "n": n, "resolution": resolution, "recipe": recipe.to_dict()}, indent=2)
    )
    written["recipe"] = out / "recipe.json"
    contact_sheet(scenes, resolution).save(out / CONTACT_SHEET)
    written["contact_sheet"] = out / CONTACT_SHEET
    return written
