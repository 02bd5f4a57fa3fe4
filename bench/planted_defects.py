"""A graded family of planted defects, made without mmdiag: safetensors in, safetensors out.

Each defect edits the weights of a saved copy of a LLaVA-layout checkpoint (the zoo's ``ref-llava-*`` or any
``LlavaForConditionalGeneration`` folder with a CLIP vision tower and a Llama LM) at a given strength; nothing of
mmdiag is imported, so the defects cannot share a blind spot with the code they test. The gates were calibrated on
clean models over seeds (``bench/gate_power.py``) before any of these was audited.

| defect | edit | strength s |
|---|---|---|
| ``yes-bias`` | the LM head's "yes" and "Yes" rows gain s * m / |m|^2, m the mean final (normed) hidden state at the answer position on 32 drawn probe images: P(yes) logit + about s | logits |
| ``weak-projector`` | the projector's output layer scaled by 1 - s | 0..1 |
| ``noisy-vision`` | every vision-tower weight plus Gaussian noise of s times that tensor's standard deviation | relative |
| ``positionless`` | the patch position embeddings moved a share s of the way to their mean | 0..1 |
| ``mirrored-positions`` | the patch position embeddings moved a share s of the way to their left-right mirror | 0..1 |
| ``channel-swap`` | the patch embedding's red and blue input channels exchanged, a share s of the way | 0..1 |
| ``prior-driven`` | weak-projector at s and yes-bias at 4 s | 0..1 |
| ``control`` | every weight plus Gaussian noise of s times its standard deviation (s = 1e-4 must pass) | relative |

    python bench/planted_defects.py --model mmdiag/zoo/weights/ref-llava-mlp --out runs/defects
    python bench/planted_defects.py --model ... --out runs/defects --only yes-bias:2,mirrored-positions:1

Writes one folder per ``defect-strength`` (config, processor and tokenizer files copied, weights edited) and
``defects.jsonl`` (what was edited, by how much).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

GRADES = {
    "yes-bias": (1.0, 2.0, 4.0, 8.0, 12.0),
    "weak-projector": (0.5, 0.8, 0.95),
    "noisy-vision": (0.5, 1.0, 2.0),
    "positionless": (0.5, 0.9, 1.0),
    "mirrored-positions": (0.5, 0.75, 1.0),
    "channel-swap": (0.5, 1.0),
    "prior-driven": (0.5, 0.8),
    "control": (1e-4,),
}
POSITIONS = "vision_tower.embeddings.position_embedding.weight"
PATCHES = "vision_tower.embeddings.patch_embedding.weight"
HEAD = "language_model.lm_head.weight"


def _projector_out(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The projector's last layer (weight and bias): the highest-numbered linear of ``multi_modal_projector``."""
    names = sorted(
        k for k in tensors if k.startswith("multi_modal_projector.") and k.endswith(".weight") and tensors[k].dim() == 2
    )
    last = names[-1].rsplit(".", 1)[0]
    return [k for k in tensors if k.startswith(last + ".")]


def _grid_flip(pos: torch.Tensor) -> torch.Tensor:
    """Position embeddings [1 + g*g, d] (CLS first) with the patch grid mirrored left-right."""
    side = int(math.isqrt(pos.shape[0] - 1))
    grid = pos[1:].reshape(side, side, -1).flip(1).reshape(side * side, -1)
    return torch.cat([pos[:1], grid])


def _answer_direction(folder: Path) -> torch.Tensor:
    """The mean final normed hidden state at the answer position over 32 drawn two-shape images and presence
    questions: adding s * m / |m|^2 to the "yes" row raises its logit by about s there (transformers + PIL only)."""
    from PIL import Image, ImageDraw
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 210, 30)}
    states = []
    for _ in range(32):
        image = Image.new("RGB", (64, 64), (235, 235, 235))
        draw = ImageDraw.Draw(image)
        for _ in range(2):
            x, y = rng.integers(4, 44, size=2)
            draw.ellipse([x, y, x + 16, y + 16], fill=colours[list(colours)[rng.integers(4)]])
        question = f"Is there a {list(colours)[rng.integers(4)]} circle in the image?"
        if getattr(processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
        else:  # LLaVA-1.5's own prompt
            prompt = f"USER: <image>\n{question} ASSISTANT:"
        inputs = processor(images=image, text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        states.append(out.hidden_states[-1][0, -1])  # after the final norm (transformers' last hidden state)
    return torch.stack(states).mean(0)


def _token_id(folder: Path, word: str) -> int:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(word, add_special_tokens=False).ids
    return ids[0]


def plant(source: Path, defect: str, strength: float, out: Path) -> dict:
    """Write ``out``: ``source`` with ``defect`` at ``strength``; returns what was edited."""
    tensors = load_file(source / "model.safetensors")
    gen = torch.Generator().manual_seed(0)
    edited: list[str] = []

    def noise(names: list[str], relative: float) -> None:
        for name in names:
            t = tensors[name]
            if t.is_floating_point() and t.numel() > 1:
                tensors[name] = t + relative * t.float().std() * torch.randn(t.shape, generator=gen).to(t.dtype)
                edited.append(name)

    if defect in ("yes-bias", "prior-driven"):
        shift = strength if defect == "yes-bias" else 4 * strength
        direction = _answer_direction(source)
        tensors[HEAD] = tensors[HEAD].clone()
        for word in ("yes", "Yes"):  # every spelling a yes/no reader sums
            yes = _token_id(source, word)
            tensors[HEAD][yes] += (shift * direction / direction.pow(2).sum()).to(tensors[HEAD].dtype)
            edited.append(f"{HEAD}[{yes}]")
    if defect in ("weak-projector", "prior-driven"):
        for name in _projector_out(tensors):
            tensors[name] = tensors[name] * (1 - strength)
            edited.append(name)
    if defect == "noisy-vision":
        noise([k for k in tensors if k.startswith("vision_tower.")], strength)
    if defect == "control":
        noise(sorted(tensors), strength)
    if defect in ("positionless", "mirrored-positions"):
        pos = tensors[POSITIONS]
        target = pos.clone()
        if defect == "positionless":
            target[1:] = pos[1:].mean(0, keepdim=True)
        else:
            target = _grid_flip(pos)
        tensors[POSITIONS] = (1 - strength) * pos + strength * target
        edited.append(POSITIONS)
    if defect == "channel-swap":
        w = tensors[PATCHES]
        swapped = w[:, [2, 1, 0]]
        tensors[PATCHES] = (1 - strength) * w + strength * swapped
        edited.append(PATCHES)
    if not edited:
        raise SystemExit(f"unknown defect {defect!r}: choose from {', '.join(GRADES)}")
    shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors", "card.json"))
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    return {"folder": str(out), "source": str(source), "defect": defect, "strength": strength, "edited": edited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a LLaVA-layout checkpoint folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default=None, help="defect:strength,... (default: every grade of every defect)")
    args = parser.parse_args()
    wanted = (
        [(d, float(s)) for d, s in (item.split(":") for item in args.only.split(","))]
        if args.only
        else [(d, s) for d, grades in GRADES.items() for s in grades]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "defects.jsonl").open("a") as log:
        for defect, strength in wanted:
            row = plant(Path(args.model), defect, strength, out / f"{defect}-{strength:g}")
            log.write(json.dumps(row) + "\n")
            print(f"wrote {row['folder']}: {defect} at {strength:g} ({len(row['edited'])} tensors)", flush=True)


if __name__ == "__main__":
    main()
