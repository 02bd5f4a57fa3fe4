"""Photo pixels for the file-based data sources (COCO folders, POPE files, relation sets): reading an image as a
viewer shows it, decoding COCO masks, and erasing a masked region (the ``remove`` counterfactual).

Only the masked pixels ever change when an object is removed; everything else is bit-identical.
COCO segmentations are polygons or RLE (uncompressed counts, or the compressed string format), decoded
by pycocotools, so every mask is pixel-exact with COCO's own API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmdiag.errors import MmdiagError

COCO_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


def load_image(path: str | Path) -> Image.Image:
    """An 8-bit RGB image as a viewer shows it, or a one-line error naming the file (missing, corrupt, not an image).

    The EXIF orientation is applied (the convention of every mmdiag source: boxes and masks are in the oriented
    frame, the photo as displayed); 16-bit and 32-bit greyscale are scaled to 8 bits by their bit depth (not
    clipped, which turns a 16-bit photo white), float images by their 0..1 or 0..255 range; palette, CMYK and the
    rest go through Pillow's own conversion."""
    path = Path(path)
    if not path.is_file():
        raise MmdiagError(f"image {path} does not exist: check the image folder")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb8(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MmdiagError(
            f"image {path} is corrupt or not an image ({err.__class__.__name__}): replace or remove it"
        ) from err


def to_rgb8(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: integer images of more than 8 bits scaled down by their depth, float images from
    0..1 (or 0..255) to 0..255."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        depth = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) <= 65535 else 2.0**32 - 1
        grey = np.clip(np.round(values / depth * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


# -- masks ---------------------------------------------------------------------------------------


def segmentation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """Boolean [height, width] mask of a COCO segmentation, decoded by pycocotools exactly as the COCO API's
    ``annToMask`` does: polygons (several are merged), uncompressed RLE (``counts`` a list) and compressed RLE
    (``counts`` a string)."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, *segmentation.get("size", (height, width)))
    else:
        counts = segmentation["counts"]
        rle = {
            "size": list(segmentation.get("size", (height, width))),
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
    return coco_mask.decode(rle).astype(bool)


def rle_mask(rle: dict, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Boolean mask of a COCO RLE (``counts`` list or compressed string; column-major runs, 0s first)."""
    h, w = rle.get("size", (height, width))
    return segmentation_mask(rle, int(h), int(w))


# -- edits ---------------------------------------------------------------------------------------


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    grown = mask.copy()
    for _ in range(radius):
        step = grown.copy()
        step[1:] |= grown[:-1]
        step[:-1] |= grown[1:]
        step[:, 1:] |= grown[:, :-1]
        step[:, :-1] |= grown[:, 1:]
        grown = step
    return grown


def remove_region(
    image: Image.Image, mask: np.ndarray, method: str = "blur", ring: int = 3, iterations: int = 200
) -> Image.Image:
    """Erase the masked pixels: ``fill`` with the mean colour of a ring around the mask, or ``blur``
    (start from that fill, then repeatedly replace masked pixels by their 3x3 neighbourhood mean, which
    diffuses the surrounding colours inwards). Pixels outside the mask are never changed.

    The work is done on the mask's bounding box grown by the ring (every pixel the fill or the diffusion reads
    lies there), so the cost follows the object's size, not the photo's; the result is the same as on the whole
    image."""
    if method not in ("blur", "fill"):
        raise ValueError("method must be 'blur' or 'fill'")
    rgb = np.asarray(image.convert("RGB"))
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {rgb.shape[:2]}")
    if not mask.any():
        return image.convert("RGB").copy()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    margin = ring + 1
    y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, mask.shape[0])
    x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, mask.shape[1])
    window, inside = rgb[y0:y1, x0:x1].astype(np.float64), mask[y0:y1, x0:x1]
    border = dilate(inside, ring) & ~inside
    if border.any():
        fill = window[border].mean(axis=0)
    elif not mask.all():
        fill = rgb[~mask].astype(np.float64).mean(axis=0)
    else:  # nothing outside the mask to fill from: mid-grey
        fill = np.full(3, 128.0)
    window[inside] = fill
    if method == "blur":
        # edge padding only reaches pixels outside the mask unless the window touches the photo's edge,
        # where it pads exactly as the whole image would
        for _ in range(iterations):
            padded = np.pad(window, ((1, 1), (1, 1), (0, 0)), mode="edge")
            mean = (
                sum(padded[dy : dy + window.shape[0], dx : dx + window.shape[1]] for dy in range(3) for dx in range(3))
                / 9
            )
            window[inside] = mean[inside]
    out = rgb.copy()
    out[y0:y1, x0:x1][inside] = np.clip(np.round(window[inside]), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")
