"""Relation benchmarks as a data source: ``mmdiag audit --data relations:FILE --images DIR``.

These layouts are read (a ``.json`` list or JSON lines), entry by entry:

- **What'sUp** (Kamath et al., EMNLP 2023), controlled sets: ``{"image_path": ..., "caption_options": [true, false,
  ...]}`` — the first option is the true caption; the image path is taken inside ``--images`` as written, else by
  its file name; its COCO and GQA subsets (``coco_qa_{one,two}_obj.json``, ``vg_qa_*``): lists ``[image_id, true
  caption, false caption]``, the image ``val2017/<id:012d>.jpg`` or ``vg_images/<id>.jpg`` inside ``--images`` (or
  by file name);
- **VSR** (Liu et al., TACL 2023): ``{"image": ..., "caption": ..., "label": 0|1, "relation", "subj", "obj"}``
  (``label`` may also be true/false or "yes"/"no"); a true caption whose subject and object are named gets the
  caption with the two swapped as its alternative ("The bed is under the suitcase." vs "The suitcase is under the
  bed."), so a dual encoder has a choice to make; other entries are statements judged true or false.

The :mod:`relations <mmdiag.probes.relations>` probe reads the statements; the attention probe asks about the
entry's subject, and is left out (not applicable, with the reason) when no entry names one (VSR's random
split). The set knows neither boxes (no spatial probe) nor which objects are absent (no POPE, no CHAIR): those
probes are left out with the reason. Paths outside ``--images``, missing images and malformed entries are one-line
errors naming the file and the entry.
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
from mmdiag.metrics.pope_io import json_entries
from mmdiag.sources.contract import DataRequest, Dataset, DataSource, EditUnavailable, Relation

RELATIONS = r"to the left of|to the right of|left of|right of|on top of|in front of|under|behind|above|below|on"
# What'sUp captions: "A beer bottle on a armchair", "A dog to the left of a chair"
WHATSUP_CAPTION = re.compile(
    rf"^\s*(?:an?|the)?\s*(?P<subject>.+?)\s+(?:is\s+)?(?P<relation>{RELATIONS})\s+(?:an?|the)?\s*"
    r"(?P<object>.+?)\s*\.?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RelationStatement:
    """Captions about one image: ``options[0]`` true and the rest false (a choice), or one caption with its
    truth ``label`` (a judgement)."""

    entry: str  # where it came from: "FILE:LINE" or "FILE entry K"
    options: tuple[str, ...]
    label: str | None = None  # "yes" | "no" for a judgement; None for a choice
    relation: str = ""
    subject: str = ""
    object: str = ""

    @property
    def is_choice(self) -> bool:
        return self.label is None


@dataclass(frozen=True)
class RelationExample:
    """One entry: an image and its statement."""

    source: RelationSetSource = field(repr=False, compare=False)
    index: int
    image_name: str
    statement: RelationStatement
    edit: str | None = None

    @property
    def example_id(self) -> str:
        return f"rel-{self.index}"

    @property
    def objects(self) -> Sequence[Any]:
        return ()

    @property
    def object_names(self) -> list[str]:
        return [n for n in dict.fromkeys((self.statement.subject, self.statement.object)) if n]

    def has(self, name: str) -> bool:
        return name in self.object_names

    def relations(self) -> list[Relation]:
        s = self.statement
        return [Relation(s.subject, s.relation, s.object)] if s.is_choice or s.label == "yes" else []

    def relations_between(self, subject: Any, other: Any) -> list[str]:
        return []

    def image(self, resolution: int) -> Image.Image:
        """The photo at its own size (the processor sizes it; there are no positions to keep)."""
        from mmdiag.sources.photos import load_image

        return load_image(self.source.image_path(self.image_name, self.statement.entry))

    def object_mask(self, side: int) -> np.ndarray:
        return np.zeros((side, side), dtype=bool)

    def without(self, name: str) -> RelationExample:
        raise EditUnavailable("a relation set has no masks to remove an object with")

    def recoloured(self, name: str, colour: str) -> RelationExample:
        raise EditUnavailable("a relation set cannot recolour objects")

    def mirrored(self, axis: str = "horizontal") -> RelationExample:
        raise EditUnavailable("a relation set's captions are not rewritten for a mirrored photo")

    def with_object(self, name: str, at: tuple[float, float]) -> RelationExample:
        raise EditUnavailable("a relation set cannot insert objects")

    def to_dict(self) -> dict[str, Any]:
        s = self.statement
        return {
            "source": "relations",
            "index": self.index,
            "image": self.image_name,
            "entry": s.entry,
            "options": list(s.options),
            "label": s.label,
            "relation": s.relation,
        }


class RelationSetSource(DataSource):
    """A What'sUp- or VSR-style relation set over a local image folder."""

    name = "relations"
    edits: frozenset[str] = frozenset()
    positions = False
    complete_objects = False
    presence = False  # which objects are absent is unknown
    relation_statements = True

    def __init__(self, path: str, images: str | None = None) -> None:
        self.path = path
        self.images = images

    @cached_property
    def image_folder(self) -> Path:
        if self.images is None:
            raise ConfigError(
                "--data relations:FILE needs --images DIR, the folder holding the images its entries name"
            )
        folder = Path(self.images)
        if not folder.is_dir():
            raise ConfigError(
                f"--images {self.images} is not a folder: pass the folder holding the relation set's images"
            )
        return folder

    @cached_property
    def _entries(self) -> list[tuple[str, RelationStatement]]:
        path = Path(self.path)
        if not path.is_file():
            raise ConfigError(f"relation set {path} does not exist: check the path after relations:")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"relation set {path} cannot be read ({err.__class__.__name__}): pass a UTF-8 JSON file"
            ) from err
        rows = json_entries(path, "relation set", text)
        out = []
        for where, row in rows:
            image, statement = _statement(path, where, row)
            target = self.image_path(image, where)
            if not target.is_file():
                raise ConfigError(
                    f"{where} names image {image!r}, which is not in {self.image_folder}: "
                    "pass the image folder with --images"
                )
            out.append((str(target.relative_to(self.image_folder.resolve())), statement))
        if not out:
            raise ConfigError(f"relation set {path} holds no entries")
        return out

    @property
    def names_objects(self) -> bool:  # type: ignore[override]
        """Whether any entry names its objects (What'sUp captions parse, VSR's zero-shot split has subj/obj; its
        random split does not)."""
        return any(statement.subject for _, statement in self._entries)

    def image_path(self, name: str, entry: str) -> Path:
        """``name`` inside the image folder as written, else by its file name (What'sUp paths start with the
        benchmark's own folders); never outside it."""
        target = resolve_inside(self.image_folder, name, source=self.path, entry=entry)
        if not target.is_file():
            alternative = resolve_inside(self.image_folder, Path(name).name, source=self.path, entry=entry)
            if alternative.is_file():
                return alternative
        return target

    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        """The first ``n`` entries in file order; a request for objects with positions gets none."""
        if request is not None and (request.min_objects or 0) > 0 and request.max_objects is not None:
            return Dataset(self, [])
        return Dataset(self, [RelationExample(self, k, image, st) for k, (image, st) in enumerate(self._entries[:n])])

    def size(self) -> int:
        return len(self._entries)

    def input_files(self) -> list[Path]:
        return [Path(self.path)]

    def image_files(self) -> list[Path]:
        return [self.image_folder / image for image in dict.fromkeys(image for image, _ in self._entries)]

    def vocabulary(self) -> list[str]:
        return sorted({n for _, s in self._entries for n in (s.subject, s.object) if n})

    def example_from_dict(self, data: Mapping[str, Any]) -> RelationExample:
        index = int(data["index"])
        if not 0 <= index < len(self._entries):
            raise ConfigError(f"entry {index} is not in {self.path}: the run was made on another relation set")
        image, statement = self._entries[index]
        return RelationExample(self, index, image, statement)

    def params(self) -> dict[str, Any]:
        return {"path": self.path, "images": self.images}


def _whatsup_list_entry(path: Path, where: str, row: list) -> tuple[str, RelationStatement]:
    """What'sUp's ``coco_qa_*``/``vg_qa_*`` entry ``[image_id, true caption, false caption]``; the image is where
    the benchmark's loader opens it: ``val2017/<id padded to 12>.jpg`` (COCO) or ``vg_images/<id>.jpg`` (VG)."""
    if not (
        len(row) >= 3
        and isinstance(row[0], (int, str))
        and not isinstance(row[0], bool)
        and all(isinstance(c, str) and c.strip() for c in row[1:])
    ):
        raise ConfigError(f"{where}: What'sUp list entries are [image_id, true caption, false caption]")
    image_id = str(row[0])
    image = f"vg_images/{image_id}.jpg" if "vg" in path.stem.lower() else f"val2017/{image_id.zfill(12)}.jpg"
    match = WHATSUP_CAPTION.match(row[1])
    parts = [match.group(k).lower() for k in ("relation", "subject", "object")] if match else ["", "", ""]
    return image, RelationStatement(where, tuple(row[1:]), None, *parts)


def _statement(path: Path, where: str, row: Any) -> tuple[str, RelationStatement]:
    if isinstance(row, list):
        return _whatsup_list_entry(path, where, row)
    if not isinstance(row, dict):
        raise ConfigError(f"{where} is not an object: entries need an image and a caption (or caption_options)")
    image = row.get("image_path", row.get("image"))
    if not isinstance(image, str) or not image.strip():
        raise ConfigError(f"{where} names no image ('image' or 'image_path'): fix that entry")
    options = row.get("caption_options")
    if options is not None:
        if not (
            isinstance(options, list) and len(options) >= 2 and all(isinstance(o, str) and o.strip() for o in options)
        ):
            raise ConfigError(f"{where}: 'caption_options' must list at least two captions, the true one first")
        match = WHATSUP_CAPTION.match(options[0])
        parts = [match.group(k).lower() for k in ("relation", "subject", "object")] if match else ["", "", ""]
        return image, RelationStatement(where, tuple(options), None, *parts)
    caption = row.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise ConfigError(f"{where} has no 'caption' (or 'caption_options'): fix that entry")
    label = _label(row.get("label"), where)
    subject, obj, relation = (str(row.get(k) or "").strip() for k in ("subj", "obj", "relation"))
    swapped = _swapped(caption, subject, obj)
    if label == "yes" and swapped is not None:
        return image, RelationStatement(where, (caption, swapped), None, relation, subject, obj)
    return image, RelationStatement(where, (caption,), label, relation, subject, obj)


def _label(value: Any, where: str) -> str:
    if isinstance(value, bool) or value in (0, 1):
        return "yes" if value else "no"
    if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false"):
        return "yes" if value.strip().lower() in ("yes", "true") else "no"
    raise ConfigError(f"{where} has label {value!r}: a relation statement's label is 1/0, true/false or yes/no")


def _swapped(caption: str, subject: str, obj: str) -> str | None:
    """The caption with its subject and object exchanged, where each occurs once as a whole word."""
    if not subject or not obj or subject == obj:
        return None
    found = [
        (m.start(), m.end(), word)
        for word in (subject, obj)
        for m in re.finditer(rf"\b{re.escape(word)}\b", caption, flags=re.IGNORECASE)
    ]
    if len(found) != 2:
        return None
    (s0, e0, w0), (s1, e1, w1) = sorted(found)
    other = {w0.lower(): w1, w1.lower(): w0}
    return caption[:s0] + other[w0.lower()] + caption[e0:s1] + other[w1.lower()] + caption[e1:]
