"""A COCO-format folder as a data source: ``mmdiag audit --data coco:DIR``.

``DIR`` holds the instance annotations (``annotations/instances_<split>.json`` or ``instances_<split>.json``; or
name the JSON file itself) and the images (``--images DIR``, else ``DIR/images``, ``DIR/<split>`` or ``DIR``).
Every probe runs on it:

- objects are the annotated instances (crowd regions and instances under ``min_area`` of the image left out),
  their positions the boxes, their pixels the masks decoded by pycocotools (polygons, RLE, compressed RLE);
- relations (left of / right of / above / below) hold between categories with one kept instance each, from the
  box centres (a difference of more than ``RELATION_MARGIN`` of the image);
- counterfactuals: ``remove`` (every instance of the category erased by diffusing the surrounding pixels into
  its dilated mask, :func:`~mmdiag.sources.photos.remove_region`) and ``mirror`` (left-right, relations flip);
  recolouring and insertion are not made on photos, and the probes say so;
- POPE questions come from the annotations with POPE's own random / popular / adversarial sampling over this
  image set (:mod:`mmdiag.metrics.pope_sampling`);
- CHAIR reads captions with the original 2018 rules and synonyms when the categories are COCO's 80, with the
  objects named by the reference captions (``captions_<split>.json`` beside the instances file) added to the
  ground truth, as the original does.

Images are read as a viewer shows them (EXIF orientation applied: boxes, masks and the declared width and height
are in that oriented frame, checked against the file) and squashed to a square of the run's resolution, so
normalised boxes hold on the pixels the model sees. The annotation file is checked entry by entry
(:mod:`~mmdiag.sources.coco_checks`): duplicate ids, non-integer ids and sizes, non-finite or empty boxes, bad
RLE and the like are one-line errors before any model work.
A missing image, an image path outside the image folder or a malformed annotation is a one-line error naming
the file and the entry; a corrupt image fails its own examples only (recorded, the run goes on).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmdiag.data_paths import resolve_inside
from mmdiag.errors import ConfigError
from mmdiag.sources.coco_checks import check_image_size
from mmdiag.sources.contract import DataRequest, Dataset, DataSource, EditUnavailable, Relation

RELATION_MARGIN = 0.15  # of the image side, between box centres
MAX_REMOVED_AREA = 0.6  # an object covering more of the photo leaves too little to fill it from
IMAGE_CACHE = 48  # edited and resized images kept per source (the probes ask for each a few times)


@dataclass(frozen=True)
class CocoObject:
    """One kept instance: its category and its box, normalised to the image (0..1, y downwards)."""

    name: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    annotation_id: int = 0

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def attributes(self) -> Mapping[str, str]:
        return {}  # COCO annotates no colours or shapes: the probes' attribute tasks say so

    def bbox(self) -> tuple[float, float, float, float]:
        return self.box

    def grid_cell(self, rows: int = 3, cols: int = 3) -> tuple[int, int]:
        return min(int(self.cy * rows), rows - 1), min(int(self.cx * cols), cols - 1)

    def mirrored(self) -> CocoObject:
        x0, y0, x1, y1 = self.box
        return CocoObject(self.name, (1 - x1, y0, 1 - x0, y1), self.annotation_id)


def relations_of(a: CocoObject, b: CocoObject, margin: float = RELATION_MARGIN) -> list[str]:
    """The relations of ``a`` with respect to ``b`` that the box centres make unambiguous (the scenes' rule, with
    a wider margin: photo boxes are large)."""
    from mmdiag.scenes.model import relations_between

    return relations_between(a, b, margin)  # type: ignore[arg-type] - reads cx and cy only


@dataclass(frozen=True)
class CocoExample:
    """One annotated photo, possibly mirrored and with categories removed."""

    source: CocoSource = field(repr=False, compare=False)
    image_id: int
    file_name: str
    objects: tuple[CocoObject, ...]
    removed: tuple[str, ...] = ()
    flipped: bool = False
    edit: str | None = None

    @property
    def example_id(self) -> str:
        return f"coco-{self.image_id}"

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    def has(self, name: str) -> bool:
        return name in self.object_names

    def relations(self) -> list[Relation]:
        names = self.object_names
        single = [o for o in self.objects if names.count(o.name) == 1]
        return [
            Relation(a.name, rel, b.name) for a in single for b in single if a is not b for rel in relations_of(a, b)
        ]

    def relations_between(self, subject: CocoObject, other: CocoObject) -> list[str]:
        return relations_of(subject, other)

    def image(self, resolution: int) -> Image.Image:
        return self.source.render(self, resolution)

    def object_mask(self, side: int) -> np.ndarray:
        return self.source.mask_of(self, [o.annotation_id for o in self.objects], side)

    def without(self, name: str) -> CocoExample:
        if not self.has(name):
            raise EditUnavailable(f"no {name} is annotated in {self.file_name}")
        covered = self.source.covered_by(self, (*self.removed, name))
        if covered > MAX_REMOVED_AREA:
            raise EditUnavailable(
                f"the {name} covers {covered:.0%} of {self.file_name}: too little is left to fill it from"
            )
        return replace(
            self, objects=tuple(o for o in self.objects if o.name != name), removed=(*self.removed, name), edit="remove"
        )

    def recoloured(self, name: str, colour: str) -> CocoExample:
        raise EditUnavailable("COCO photos are not recoloured (no colour annotations)")

    def mirrored(self, axis: str = "horizontal") -> CocoExample:
        if axis != "horizontal":
            raise EditUnavailable("COCO photos are mirrored left-right only (an upside-down photo is not a scene)")
        return replace(self, objects=tuple(o.mirrored() for o in self.objects), flipped=not self.flipped, edit="mirror")

    def with_object(self, name: str, at: tuple[float, float]) -> CocoExample:
        raise EditUnavailable("objects are not pasted into COCO photos")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "coco",
            "image_id": self.image_id,
            "file_name": self.file_name,
            "objects": [{"name": o.name, "bbox": [round(v, 6) for v in o.box]} for o in self.objects],
            "removed": list(self.removed),
            "flipped": self.flipped,
            "edit": self.edit,
        }


class CocoSource(DataSource):
    """Annotated photos of a COCO-format folder (see the module docstring for the layout)."""

    name = "coco"
    edits = frozenset({"remove", "mirror"})
    positions = True
    complete_objects = True

    def __init__(self, root: str, images: str | None = None, min_area: float = 0.01) -> None:
        self.root = root
        self.images = images
        self.min_area = min_area

    # -- the folder ------------------------------------------------------------------------------
    @cached_property
    def annotation_file(self) -> Path:
        root = Path(self.root)
        if root.is_file():
            return root
        if not root.is_dir():
            raise ConfigError(
                f"coco:{self.root} does not exist: pass a COCO folder (annotations/instances_<split>.json "
                "and the images) or the instances JSON itself"
            )
        found = sorted(root.glob("instances_*.json")) or sorted(root.glob("annotations/instances_*.json"))
        if len(found) != 1:
            what = (
                "no instances_*.json"
                if not found
                else f"{len(found)} instances files ({', '.join(p.name for p in found)})"
            )
            raise ConfigError(
                f"coco:{self.root} holds {what}: name the annotation file, e.g. "
                f"coco:{found[0] if found else root / 'annotations/instances_val2017.json'}"
            )
        return found[0]

    @cached_property
    def image_folder(self) -> Path:
        if self.images is not None:
            folder = Path(self.images)
            if not folder.is_dir():
                raise ConfigError(f"--images {self.images} is not a folder: pass the folder holding the COCO images")
            return folder
        ann = self.annotation_file
        base = ann.parent.parent if ann.parent.name == "annotations" else ann.parent
        split = ann.stem.removeprefix("instances_")
        for folder in (base / "images", base / split, base):
            if folder.is_dir() and any(folder.iterdir()):
                return folder
        return base

    @cached_property
    def _index(self) -> _CocoIndex:
        return _CocoIndex.read(self.annotation_file, self.min_area)

    # -- the contract ----------------------------------------------------------------------------
    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        index = self._index
        low = request.min_objects if request and request.min_objects is not None else 1
        high = request.max_objects if request and request.max_objects is not None else None
        candidates = [
            im for im in index.image_ids if low <= len(index.kept[im]) and (high is None or len(index.kept[im]) <= high)
        ]
        order = np.random.default_rng([seed, 41]).permutation(len(candidates))
        chosen = [candidates[i] for i in order[:n]]
        for image_id in chosen:  # a missing, escaping or mis-sized image is refused before any model work
            path = self.image_path(image_id)
            if not path.is_file():
                raise ConfigError(
                    f"{self.annotation_file}: image {image_id} names {index.images[image_id]['file_name']!r}, "
                    f"which is not in {self.image_folder}: pass the image folder with --images"
                )
            if image_id not in self._sizes_checked:
                check_image_size(self.annotation_file, image_id, index.images[image_id], path)
                self._sizes_checked.add(image_id)
        return Dataset(self, [self._example(image_id) for image_id in chosen])

    def size(self) -> int:
        return sum(bool(objects) for objects in self._index.kept.values())

    def vocabulary(self) -> list[str]:
        return list(self._index.category_names)

    def example_from_dict(self, data: Mapping[str, Any]) -> CocoExample:
        example = self._example(int(data["image_id"]))
        for name in data.get("removed", []):
            example = example.without(name)
        if data.get("flipped"):
            example = example.mirrored()
        return replace(example, edit=data.get("edit"))

    @property
    def caption_rules(self) -> str:  # type: ignore[override]
        from mmdiag.sources.photos import COCO_CLASSES

        return "coco-2018" if set(self._index.category_names) <= set(COCO_CLASSES) else "vocabulary"

    def caption_truth(self, example: Any) -> list[str]:
        """Every annotated category of the photo (crowds and small instances too: they are in it) and, on the
        unedited photo, the objects its reference captions name; as CHAIR classes under the 2018 rules."""
        index = self._index
        names = {index.category_names_by_id[a["category_id"]] for a in index.annotations[example.image_id]}
        names -= set(example.removed)
        if self.caption_rules != "coco-2018":
            return sorted(names)
        rules = self._chair_rules
        truth = {rules.class_of(name) for name in names}
        if not example.removed:
            for caption in self._reference_captions.get(example.image_id, []):
                truth.update(rules.caption_to_words(caption).node_words)
        return sorted(truth)

    def params(self) -> dict[str, Any]:
        return {"root": self.root, "images": self.images, "min_area": self.min_area}

    # -- pixels ----------------------------------------------------------------------------------
    def image_path(self, image_id: int) -> Path:
        name = self._index.images[image_id]["file_name"]
        return resolve_inside(self.image_folder, name, source=str(self.annotation_file), entry=f"image {image_id}")

    def render(self, example: CocoExample, resolution: int) -> Image.Image:
        """The photo squashed to ``resolution`` square, mirrored and with the removed categories erased."""
        key = (example.image_id, example.removed, example.flipped, resolution)
        cache = self._images
        if key in cache:
            cache.move_to_end(key)
            return cache[key].copy()
        from mmdiag.sources.photos import dilate, load_image, remove_region

        image = load_image(self.image_path(example.image_id)).resize((resolution, resolution), Image.BICUBIC)
        if example.flipped:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if example.removed:
            ids = [
                a["id"]
                for a in self._index.annotations[example.image_id]
                if self._index.category_names_by_id[a["category_id"]] in example.removed
            ]
            image = remove_region(image, dilate(self.mask_of(example, ids, resolution), 1))
        cache[key] = image
        while len(cache) > IMAGE_CACHE:
            cache.popitem(last=False)
        return image.copy()

    def covered_by(self, example: CocoExample, categories: Sequence[str]) -> float:
        """The share of the photo the instances of ``categories`` cover."""
        index = self._index
        ids = [
            a["id"]
            for a in index.annotations[example.image_id]
            if index.category_names_by_id[a["category_id"]] in categories
        ]
        return float(self.mask_of(example, ids, 64).mean())

    def mask_of(self, example: CocoExample, annotation_ids: Sequence[int], side: int) -> np.ndarray:
        """Boolean [side, side]: the union of these annotations' masks on the (mirrored) square image."""
        index = self._index
        info = index.images[example.image_id]
        mask = np.zeros((info["height"], info["width"]), dtype=bool)
        for ann in index.annotations[example.image_id]:
            if ann["id"] in annotation_ids:
                mask |= index.mask(ann, info)
        square = np.asarray(Image.fromarray(mask).resize((side, side), Image.NEAREST), dtype=bool)
        return square[:, ::-1] if example.flipped else square

    def check(self, n: int, seed: int, requests: Sequence[tuple[DataRequest | None, str]]) -> None:
        """The annotations, the reference captions and every chosen image's file and size, read now."""
        super().check(n, seed, requests)
        self._reference_captions  # noqa: B018 - read for its refusal of a bad captions file

    def input_files(self) -> list[Path]:
        captions = self._captions_file
        return [self.annotation_file, *([captions] if captions.is_file() else [])]

    def image_files(self) -> list[Path]:
        return [self.image_path(image_id) for image_id in self._index.image_ids if self._index.kept[image_id]]

    @cached_property
    def _sizes_checked(self) -> set[int]:
        return set()

    @property
    def _captions_file(self) -> Path:
        return self.annotation_file.with_name(self.annotation_file.name.replace("instances_", "captions_", 1))

    @cached_property
    def _images(self) -> OrderedDict:
        return OrderedDict()

    @cached_property
    def _chair_rules(self) -> Any:
        from mmdiag.metrics.coco_chair import ChairRules2018

        return ChairRules2018()

    @cached_property
    def _reference_captions(self) -> dict[int, list[str]]:
        path = self._captions_file
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out: dict[int, list[str]] = {}
            for ann in data["annotations"]:
                if not isinstance(ann["caption"], str):
                    raise TypeError(f"caption {ann['caption']!r} is not text")
                out.setdefault(ann["image_id"], []).append(ann["caption"])
            return out
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise ConfigError(
                f"{path} is not a COCO captions file ({err.__class__.__name__}: {err}): fix it or move it away"
            ) from err

    def _example(self, image_id: int) -> CocoExample:
        index = self._index
        if image_id not in index.images:
            raise ConfigError(f"{self.annotation_file} has no image {image_id}: the run was made on other annotations")
        info = index.images[image_id]
        return CocoExample(self, image_id, info["file_name"], tuple(index.kept[image_id]))


@dataclass
class _CocoIndex:
    """The annotation file, validated once: images, categories, annotations per image, kept objects."""

    path: Path
    images: dict[int, dict]
    category_names_by_id: dict[int, str]
    annotations: dict[int, list[dict]]
    kept: dict[int, list[CocoObject]]

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.images)

    @property
    def category_names(self) -> list[str]:
        return list(dict.fromkeys(self.category_names_by_id[k] for k in sorted(self.category_names_by_id)))

    def mask(self, ann: dict, info: dict) -> np.ndarray:
        from mmdiag.sources.photos import segmentation_mask

        height, width = info["height"], info["width"]
        segmentation = ann.get("segmentation")
        if segmentation:
            try:
                return segmentation_mask(segmentation, height, width)
            except Exception as err:  # pycocotools raises plain Exceptions and TypeErrors on bad input
                raise ConfigError(
                    f"{self.path}: annotation {ann['id']} has a segmentation pycocotools cannot decode "
                    f"({err.__class__.__name__}): fix or remove it"
                ) from err
        x, y, w, h = ann["bbox"]  # no segmentation: the box is the mask
        mask = np.zeros((height, width), dtype=bool)
        mask[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = True
        return mask

    @classmethod
    def read(cls, path: Path, min_area: float) -> _CocoIndex:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"{path} is not readable JSON ({err.__class__.__name__}): pass a COCO instances file"
            ) from err
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
        ):
            raise ConfigError(
                f"{path} is not a COCO instances file: it needs lists 'images', 'annotations', 'categories'"
            )
        from mmdiag.sources import coco_checks as check

        categories: dict[int, str] = {}
        seen: dict[int, int] = {}
        for k, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or not isinstance(cat.get("name"), str):
                raise ConfigError(f"{path}: category {k} needs an integer 'id' and a 'name': fix that entry")
            categories[check.unique_id(seen, cat.get("id"), k, path, "category")] = cat["name"]
        images: dict[int, dict] = {}
        seen = {}
        for k, im in enumerate(data["images"]):
            check.check_image_entry(path, k, im)
            images[check.unique_id(seen, im.get("id"), k, path, "image")] = im
        annotations: dict[int, list[dict]] = {im: [] for im in images}
        kept: dict[int, list[CocoObject]] = {im: [] for im in images}
        seen = {}
        for k, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                raise ConfigError(f"{path}: annotation entry {k} is not an object: fix or remove it")
            entry = f"annotation {ann.get('id', k)}"
            ann_id = check.unique_id(seen, ann["id"], k, path, "annotation") if "id" in ann else -(k + 1)
            image_id = ann.get("image_id")
            if not check.is_int(image_id) or image_id not in images:
                raise ConfigError(
                    f"{path}: {entry} names no image of the file ('image_id' {image_id!r}): fix or remove it"
                )
            if not check.is_int(ann.get("category_id")) or ann["category_id"] not in categories:
                raise ConfigError(
                    f"{path}: {entry} has category_id {ann.get('category_id')!r}, not in 'categories': fix or remove it"
                )
            info = images[image_id]
            width, height = info["width"], info["height"]
            x, y, w, h = check.checked_box(path, entry, ann.get("bbox"), width, height)
            check.check_flags(path, entry, ann)
            check.check_segmentation(path, entry, ann.get("segmentation"), width, height)
            ann = {**ann, "id": ann_id, "bbox": [x, y, w, h]}
            annotations[image_id].append(ann)
            area = ann.get("area", w * h)
            if ann.get("iscrowd") or area < min_area * width * height:
                continue
            norm = (x / width, y / height, (x + w) / width, (y + h) / height)
            kept[image_id].append(CocoObject(categories[ann["category_id"]], norm, ann_id))
        return cls(path, images, categories, annotations, kept)
