"""A user's own harness in a few lines: answer an ``mmdiag export`` with transformers alone (no mmdiag import), as
``tests/test_answers_audit.py`` does for the round trip. Greedy generation, LLaVA-1.5's prompt, one item at a time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration


def answer_export(model_dir: str | Path, export: str | Path, out: str | Path) -> Path:
    """Write ``{"question_id": index, "answer": text}`` per exported item to ``out``."""
    export, out = Path(export), Path(out)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    with out.open("w") as sink:
        for line in (export / "items.jsonl").read_text().splitlines():
            item = json.loads(line)
            image = Image.open(export / item["image"]).convert("RGB")
            inputs = processor(images=image, text=f"USER: <image>\n{item['question']} ASSISTANT:", return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(**inputs, max_new_tokens=item["max_new_tokens"], do_sample=False)
            text = processor.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            sink.write(json.dumps({"question_id": item["index"], "answer": text}) + "\n")
    return out


if __name__ == "__main__":
    answer_export(*sys.argv[1:4])
