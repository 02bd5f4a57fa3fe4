"""A COCO instances file checked entry by entry, as the COCO API would need it and beyond.

Every rule here turns a file that would give wrong ground truth without a word into a one-line
:class:`~mmdiag.errors.ConfigError` naming the file, the entry and the fix:

- ids are integers (``true`` is not an id) and unique: a second image, category or annotation with an id already
  used is refused naming both entries (a duplicate image id would move one photo's annotations onto another, a
  duplicate annotation id make "remove the cup" erase the spoon too, a duplicate category id relabel objects);
- image sizes are positive integers within :data:`MAX_SIDE` and :data:`MAX_PIXELS` (a declared 30000×30000 image
  would cost gigabytes of mask memory); they are checked against the image file itself when it is opened
  (:func:`check_image_size`), in the file's EXIF-oriented frame;
- boxes are four finite numbers with positive width and height; a box reaching past the image is clipped to it,
  one wholly outside is refused;
- ``iscrowd`` is 0 or 1 (the string ``"0"`` is not), ``area`` a finite non-negative number;
- segmentations are polygons (lists of at least three finite x, y pairs) or RLE whose ``size`` is the image's
  ``[height, width]`` and whose counts (a list, or COCO's compressed string, decoded here exactly as pycocotools'
  ``rleFrString`` does) are non-negative and cover the image exactly: pycocotools itself decodes an empty or
  garbled string into uninitialised memory rather than refusing it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mmdiag.errors import ConfigError

MAX_SIDE = 20_000  # pixels, per side of a declared image size
MAX_PIXELS = 100_000_000  # a declared size's area: masks are decoded at the image's size


def is_int(value: Any) -> bool:
    """An integer that is not a boolean (JSON ``true`` is not an id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a boolean (JSON's ``NaN`` and ``Infinity`` are refused)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def unique_id(seen: dict[int, int], value: Any, k: int, path: Path, kind: str) -> int:
    """``value`` as the integer id of entry ``k`` of ``kind``; refused when not an integer or already used."""
    if not is_int(value):
        raise ConfigError(f"{path}: {kind} entry {k} has id {value!r}: ids are integers; fix that entry")
    if value in seen:
        raise ConfigError(
            f"{path}: {kind} entries {seen[value]} and {k} share the id {value}: ids must be unique "
            f"(a duplicate mixes two {kind}s' ground truth); renumber one"
        )
    seen[value] = k
    return value


def check_image_entry(path: Path, k: int, entry: Any) -> None:
    """An ``images`` entry: an id, a file name, and a plausible positive integer size."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        raise ConfigError(
            f"{path}: image entry {k} needs an integer 'id', a 'file_name' and positive 'width' and "
            "'height': fix that entry"
        )
    width, height = entry.get("width"), entry.get("height")
    if not (is_int(width) and is_int(height) and width > 0 and height > 0):
        raise ConfigError(
            f"{path}: image entry {k} ({entry['file_name']}) has width {width!r} and height {height!r}: "
            "both must be positive integers (pixels); fix that entry"
        )
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ConfigError(
            f"{path}: image entry {k} ({entry['file_name']}) declares {width}x{height} pixels, above "
            f"the {MAX_SIDE} px per side / {MAX_PIXELS // 1_000_000} Mpx mmdiag decodes masks at: "
            "fix the size or downscale the image and its annotations"
        )


def checked_box(path: Path, entry: str, box: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """``bbox`` [x, y, w, h] as finite numbers with positive size, clipped to the image; refused when wholly
    outside it."""
    if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)):
        raise ConfigError(
            f"{path}: {entry} needs a 'bbox' of four finite numbers [x, y, width, height], got {box!r}: fix it"
        )
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ConfigError(
            f"{path}: {entry} has a bbox of width {w:g} and height {h:g}: both must be above 0; fix or remove it"
        )
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))
    if x1 <= x0 or y1 <= y0:
        raise ConfigError(f"{path}: {entry} has bbox {box} outside its {width}x{height} image: fix or remove it")
    return x0, y0, x1 - x0, y1 - y0


def check_flags(path: Path, entry: str, ann: dict) -> None:
    """``iscrowd`` 0/1 and ``area`` a finite non-negative number, where given."""
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, (str, float)):
        raise ConfigError(f"{path}: {entry} has iscrowd {crowd!r}: it is 0 or 1 (a number, not text); fix it")
    if "area" in ann and not (is_number(ann["area"]) and ann["area"] >= 0):
        raise ConfigError(f"{path}: {entry} has area {ann['area']!r}: it is a non-negative number of pixels; fix it")


def check_segmentation(path: Path, entry: str, segmentation: Any, width: int, height: int) -> None:
    """Polygons or an RLE that pycocotools decodes to this image's mask (see the module docstring)."""
    if segmentation in (None, [], {}):
        return  # no segmentation: the box is the mask
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not (
                isinstance(polygon, list)
                and len(polygon) >= 6
                and len(polygon) % 2 == 0
                and all(is_number(v) for v in polygon)
            ):
                raise ConfigError(
                    f"{path}: {entry} has a polygon that is not a list of at least three finite x, y "
                    "pairs: fix or remove its segmentation"
                )
        return
    if not isinstance(segmentation, dict):
        raise ConfigError(f"{path}: {entry} has a segmentation that is neither polygons nor RLE: fix or remove it")
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)) or size != [height, width]:
        raise ConfigError(
            f"{path}: {entry} has an RLE of size {size!r}, but its image is {height}x{width} "
            "([height, width]): the mask belongs to another image or was scaled; fix it"
        )
    if isinstance(counts, str):
        try:
            runs = rle_string_counts(counts)
        except ValueError as err:
            raise ConfigError(
                f"{path}: {entry} has a compressed RLE that does not decode ({err}): fix or remove it"
            ) from err
    elif isinstance(counts, list) and all(is_int(v) for v in counts):
        runs = counts
    else:
        raise ConfigError(f"{path}: {entry} has RLE counts that are neither a string nor a list of integers: fix it")
    if any(v < 0 for v in runs) or sum(runs) != height * width:
        raise ConfigError(
            f"{path}: {entry} has RLE counts covering {sum(runs)} pixels (some negative: "
            f"{any(v < 0 for v in runs)}), not the image's {height * width}: fix or remove it"
        )


def rle_string_counts(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string, decoded as pycocotools' ``rleFrString`` does (6-bit
    characters from '0', 5 bits of value each, sign-extended, differences from the run two back after the third),
    but refusing characters outside the alphabet and a string that ends inside a number."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        value, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("the string ends inside a run length")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r} is not of COCO's RLE alphabet")
            value |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def oriented_size(image_path: Path) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(the size as displayed, i.e. after the EXIF orientation, the stored size, the orientation tag) of an image
    file, from its header only."""
    from PIL import Image

    with Image.open(image_path) as image:
        stored = image.size
        orientation = int(image.getexif().get(0x0112, 1) or 1)
    shown = (stored[1], stored[0]) if orientation in (5, 6, 7, 8) else stored
    return shown, stored, orientation


def check_image_size(annotation_file: Path, image_id: int, info: dict, image_path: Path) -> None:
    """The declared ``width``/``height`` against the image file, in the EXIF-oriented frame (the frame boxes and
    masks are read in: the photo as a viewer shows it). A mismatch would place every box wrong: refused, naming
    both sizes (and the orientation, when the JSON gave the unrotated size)."""
    from PIL import UnidentifiedImageError

    try:
        shown, stored, orientation = oriented_size(image_path)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise ConfigError(
            f"image {image_path} is corrupt or not an image ({err.__class__.__name__}): replace or remove it"
        ) from err
    declared = (info["width"], info["height"])
    if declared == shown:
        return
    why = (
        f" (the file's EXIF orientation {orientation} rotates its stored {stored[0]}x{stored[1]}: mmdiag reads "
        "boxes in the oriented frame, as viewers show the photo)"
        if declared == stored
        else ""
    )
    raise ConfigError(
        f"{annotation_file}: image {image_id} declares {declared[0]}x{declared[1]} but "
        f"{image_path.name} is {shown[0]}x{shown[1]}{why}: fix the annotation's width and height "
        "(and its boxes) to the image as shown"
    )
