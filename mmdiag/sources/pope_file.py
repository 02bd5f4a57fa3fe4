"""Official POPE question files as a data source: ``mmdiag audit --data pope:FILE[,FILE...] --images DIR``.

Each line ``{"question_id", "image", "text", "label"}`` (the official ``coco_pope_{random,popular,adversarial}``
files are JSON lines) is asked verbatim, on the photo as it is (the model's processor sizes it, as in the
official evaluation), and scored from the logits and, with free-text answers, under every parsing rule. The
split of a file is the one its name contains (``random``, ``popular``, ``adversarial``), else ``random``; give the
three files of one image set together and a question shared by several splits is asked once.

What a question file cannot give, the probes say instead of guessing: it knows only which objects are present
(no boxes or masks: no spatial probe, no object-region attention), it cannot make counterfactual images (the
blind baselines still run), and its objects are only those the questions ask about, so a caption naming another
object is not a known hallucination (no CHAIR).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmdiag.data_paths import resolve_inside
from mmdiag.errors import ConfigError
from mmdiag.sources.contract import DataRequest, Dataset, DataSource, EditUnavailable, FixedQuestion, Relation

QUESTION = re.compile(r"^\s*is there an? (?P<object>.+?) in the (?:image|picture|photo)\s*\??\s*$", re.IGNORECASE)
SPLITS = ("random", "popular", "adversarial")


def split_of(path: Path) -> str:
    """The POPE split a question file's name says (``coco_pope_adversarial.json`` -> adversarial), else random."""
    stem = path.stem.lower()
    return next((split for split in SPLITS if split in stem), "random")


def object_of(text: str) -> str:
    """The object a presence question asks about ("Is there a dining table in the image?" -> dining table)."""
    match = QUESTION.match(text)
    return match.group("object").strip().lower() if match else text.strip()


@dataclass(frozen=True)
class PopeFileExample:
    """One image of the question files with its questions; no object positions."""

    source: PopeFileSource = field(repr=False, compare=False)
    image_name: str
    pope_questions: tuple[FixedQuestion, ...]
    edit: str | None = None

    @property
    def example_id(self) -> str:
        return f"pope-{self.image_name}"

    @property
    def objects(self) -> Sequence[Any]:
        return ()  # present objects are known by name only (see object_names)

    @property
    def object_names(self) -> list[str]:
        return list(dict.fromkeys(q.object for q in self.pope_questions if q.label == "yes"))

    def has(self, name: str) -> bool:
        return name in self.object_names

    def relations(self) -> list[Relation]:
        return []

    def relations_between(self, subject: Any, other: Any) -> list[str]:
        return []

    def image(self, resolution: int) -> Image.Image:
        """The photo at its own size (``resolution`` does not apply: there are no positions to keep)."""
        from mmdiag.sources.photos import load_image

        return load_image(self.source.image_path(self.image_name))

    def object_mask(self, side: int) -> np.ndarray:
        return np.zeros((side, side), dtype=bool)  # positions unknown

    def without(self, name: str) -> PopeFileExample:
        raise EditUnavailable("a POPE question file has no masks to remove an object with")

    def recoloured(self, name: str, colour: str) -> PopeFileExample:
        raise EditUnavailable("a POPE question file cannot recolour objects")

    def mirrored(self, axis: str = "horizontal") -> PopeFileExample:
        raise EditUnavailable("a POPE question file knows no relations to flip")

    def with_object(self, name: str, at: tuple[float, float]) -> PopeFileExample:
        raise EditUnavailable("a POPE question file cannot insert objects")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "pope",
            "image": self.image_name,
            "questions": [
                {"question_id": q.question_id, "text": q.text, "label": q.label, "split": q.split}
                for q in self.pope_questions
            ],
        }


class PopeFileSource(DataSource):
    """POPE question files over a local image folder (``questions``: one path, or several joined by commas)."""

    name = "pope"
    edits: frozenset[str] = frozenset()
    positions = False
    complete_objects = False

    def __init__(self, questions: str, images: str | None = None) -> None:
        self.questions = questions
        self.images = images
        self._first_entry: dict[str, str] = {}  # image -> the first question naming it, for error messages

    @cached_property
    def _files(self) -> list[Path]:
        files = [Path(p) for p in str(self.questions).split(",") if p.strip()]
        if not files:
            raise ConfigError("pope: names no question file: use --data pope:FILE[,FILE...] --images DIR")
        return files

    @cached_property
    def image_folder(self) -> Path:
        if self.images is None:
            raise ConfigError("--data pope:FILE needs --images DIR, the folder holding the images the questions name")
        folder = Path(self.images)
        if not folder.is_dir():
            raise ConfigError(f"--images {self.images} is not a folder: pass the folder holding the POPE images")
        return folder

    @cached_property
    def _by_image(self) -> dict[str, tuple[FixedQuestion, ...]]:
        from mmdiag.metrics.pope_io import read_pope_jsonl

        grouped: dict[str, list[FixedQuestion]] = {}
        entries: dict[str, str] = {}
        for path in self._files:
            split = split_of(path)
            for question in read_pope_jsonl(path):  # a malformed line: one-line error naming file and line
                entry = f"question_id {question.question_id}"
                resolve_inside(self.image_folder, question.image, source=str(path), entry=entry)
                entries.setdefault(question.image, f"{path} ({entry})")
                grouped.setdefault(question.image, []).append(
                    FixedQuestion(
                        str(question.question_id), question.text, object_of(question.text), question.label, split
                    )
                )
        self._first_entry.update(entries)
        return {image: tuple(qs) for image, qs in grouped.items()}

    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        """The first ``n`` images in file order (the whole file when ``n`` covers it); a request for objects with
        positions gets none. Only the chosen images must exist (``--limit 16`` needs 16 images, not 3,000)."""
        if request is not None and (request.min_objects or 0) > 0 and request.max_objects is not None:
            return Dataset(self, [])
        chosen = list(self._by_image.items())[:n]
        for image, _ in chosen:
            if not (self.image_folder / image).is_file():
                raise ConfigError(
                    f"{self._first_entry[image]} names image {image!r}, which is not in {self.image_folder}: "
                    "pass the image folder with --images"
                )
        return Dataset(self, [PopeFileExample(self, image, qs) for image, qs in chosen])

    def size(self) -> int:
        return len(self._by_image)

    def input_files(self) -> list[Path]:
        return list(self._files)

    def image_files(self) -> list[Path]:
        return [self.image_folder / image for image in self._by_image]

    def vocabulary(self) -> list[str]:
        return sorted({q.object for qs in self._by_image.values() for q in qs})

    def example_from_dict(self, data: Mapping[str, Any]) -> PopeFileExample:
        image = str(data["image"])
        if image not in self._by_image:
            raise ConfigError(f"image {image!r} is in none of {self.questions}: the run was made on other files")
        return PopeFileExample(self, image, self._by_image[image])

    def image_path(self, name: str) -> Path:
        return resolve_inside(self.image_folder, name, source=self.questions, entry=f"image {name}")

    def params(self) -> dict[str, Any]:
        return {"questions": self.questions, "images": self.images}
