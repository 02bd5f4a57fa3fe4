"""What one exported item is, and the content key that finds its answer again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

YESNO = "yesno"  # a yes/no question: the answer is parsed into a decision
GENERATE = "generate"  # free text (short answers, captions): the answer is used as written


def image_hash(image: Image.Image) -> str:
    """16 hex digits over the image's mode, size and pixels (what a lossless PNG keeps)."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()[:16]


def item_key(image_id: str, kind: str, text: str, max_new_tokens: int | None = None) -> str:
    """The key of one question about one image, asked as ``kind`` (generation lengths kept apart)."""
    return f"{image_id}|{kind}{'' if max_new_tokens is None else f':{max_new_tokens}'}|{text}"


@dataclass(frozen=True)
class ExportItem:
    """One question about one image, as another harness asks it."""

    index: int
    image: str  # the image file inside the export folder
    image_id: str
    question: str
    kind: str
    max_new_tokens: int

    @property
    def key(self) -> str:
        return item_key(self.image_id, self.kind, self.question, None if self.kind == YESNO else self.max_new_tokens)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "image": self.image,
            "image_id": self.image_id,
            "question": self.question,
            "kind": self.kind,
            "max_new_tokens": self.max_new_tokens,
        }
