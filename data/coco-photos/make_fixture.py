"""Write the COCO-format fixture of real photographs: ``python data/coco-photos/make_fixture.py``.

Five photographs that ship inside scikit-image (``skimage/data``: astronaut, camera, chelsea, coffee, motorcycle),
with instance polygons of COCO categories traced by hand on the originals (below, in original pixels). Each
photo is written whole (polygon segmentations) and as four corner crops of 70 % of its sides (the objects move
across the frame; segmentations as compressed RLE from pycocotools, so both COCO encodings are exercised).
An instance cut to under 15 % of its area by a crop is dropped. Images are JPEG, longest side 200 px.
Needs ``pip install scikit-image`` (not a dependency of mmdiag: only this generator reads it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

OUT = Path(__file__).resolve().parent
LONGEST = 200
CROP = 0.7
KEEP = 0.15

CATEGORIES = {1: "person", 4: "motorcycle", 2: "bicycle", 15: "bench", 17: "cat", 50: "spoon", 47: "cup"}

# category -> polygon (x, y) in the original photo's pixels
PHOTOS: dict[str, dict[str, list[tuple[int, int]]]] = {
    "astronaut": {
        "person": [
            (152, 45),
            (185, 18),
            (240, 12),
            (290, 35),
            (302, 90),
            (290, 150),
            (305, 180),
            (335, 220),
            (355, 290),
            (360, 340),
            (300, 380),
            (285, 430),
            (270, 511),
            (40, 511),
            (25, 440),
            (28, 340),
            (50, 280),
            (110, 215),
            (118, 180),
            (160, 155),
            (155, 110),
        ]
    },
    "camera": {
        "person": [
            (160, 80),
            (210, 65),
            (255, 80),
            (270, 110),
            (255, 190),
            (300, 190),
            (330, 175),
            (330, 215),
            (300, 245),
            (275, 245),
            (280, 280),
            (265, 305),
            (225, 300),
            (150, 380),
            (150, 511),
            (0, 511),
            (0, 240),
            (40, 190),
            (100, 140),
            (130, 115),
            (160, 110),
        ]
    },
    "chelsea": {"cat": [(0, 0), (360, 0), (420, 30), (450, 80), (450, 299), (0, 299)]},
    "coffee": {
        "cup": [
            (178, 75),
            (200, 40),
            (250, 22),
            (330, 20),
            (385, 35),
            (408, 70),
            (402, 140),
            (390, 195),
            (370, 235),
            (335, 262),
            (290, 272),
            (250, 270),
            (248, 290),
            (225, 298),
            (200, 285),
            (195, 245),
            (188, 195),
            (178, 130),
        ],
        "spoon": [
            (402, 72),
            (418, 66),
            (422, 80),
            (410, 130),
            (392, 190),
            (380, 240),
            (398, 258),
            (407, 290),
            (395, 318),
            (365, 326),
            (338, 312),
            (328, 283),
            (340, 258),
            (365, 243),
            (375, 205),
            (393, 140),
        ],
    },
    "motorcycle": {
        "motorcycle": [
            (95, 205),
            (150, 150),
            (300, 168),
            (420, 150),
            (470, 115),
            (520, 105),
            (560, 118),
            (585, 160),
            (575, 200),
            (590, 260),
            (640, 290),
            (680, 350),
            (675, 420),
            (640, 448),
            (590, 450),
            (545, 420),
            (515, 380),
            (470, 360),
            (440, 372),
            (345, 385),
            (345, 435),
            (322, 437),
            (318, 395),
            (260, 395),
            (180, 392),
            (135, 360),
            (120, 300),
            (115, 245),
        ],
        "bench": [
            (55, 112),
            (280, 103),
            (282, 185),
            (200, 185),
            (150, 195),
            (110, 230),
            (70, 300),
            (48, 300),
            (52, 210),
            (55, 150),
        ],
        "bicycle": [(0, 150), (40, 150), (45, 230), (0, 230)],
    },
}
CAPTIONS = {
    "astronaut": "A woman in an orange space suit smiling in front of a flag.",
    "camera": "A man looks through a camera on a tripod in a field.",
    "chelsea": "A close up of a tabby cat looking to the side.",
    "coffee": "A cup of coffee on a saucer with a spoon on a wooden table.",
    "motorcycle": "A red motorcycle parked in a garage next to a bench.",
}


def photo(name: str) -> Image.Image:
    import skimage.data

    pixels = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return Image.fromarray(pixels).convert("RGB")


def windows(width: int, height: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    w, h = round(width * CROP), round(height * CROP)
    return [
        ("full", (0, 0, width, height)),
        ("top-left", (0, 0, w, h)),
        ("top-right", (width - w, 0, width, h)),
        ("bottom-left", (0, height - h, w, height)),
        ("bottom-right", (width - w, height - h, width, height)),
    ]


def main() -> None:
    images, annotations, captions = [], [], []
    (OUT / "images").mkdir(exist_ok=True)
    ids = {name: cid for cid, name in CATEGORIES.items()}
    for name, objects in PHOTOS.items():
        original = photo(name)
        full_masks = {
            cat: coco_mask.decode(
                coco_mask.frPyObjects([[float(v) for xy in poly for v in xy]], original.height, original.width)
            )[:, :, 0]
            for cat, poly in objects.items()
        }
        for where, (x0, y0, x1, y1) in windows(*original.size):
            scale = LONGEST / max(x1 - x0, y1 - y0)
            size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
            image_id = len(images) + 1
            file_name = f"{name}-{where}.jpg"
            original.crop((x0, y0, x1, y1)).resize(size, Image.BICUBIC).save(OUT / "images" / file_name, quality=88)
            images.append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
            captions.append({"id": len(captions) + 1, "image_id": image_id, "caption": CAPTIONS[name]})
            for cat, poly in objects.items():
                full = full_masks[cat]
                crop = full[y0:y1, x0:x1]
                if crop.sum() < KEEP * full.sum():
                    continue
                small = np.asarray(Image.fromarray(crop * 255).resize(size, Image.NEAREST)) > 127
                if where == "full":
                    segmentation: list | dict = [[round(v * scale, 1) for xy in poly for v in xy]]
                else:
                    rle = coco_mask.encode(np.asfortranarray(small.astype(np.uint8)))
                    segmentation = {"size": list(rle["size"]), "counts": rle["counts"].decode()}
                ys, xs = np.nonzero(small)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": ids[cat],
                        "segmentation": segmentation,
                        "area": int(small.sum()),
                        "iscrowd": 0,
                        "bbox": [
                            int(xs.min()),
                            int(ys.min()),
                            int(xs.max() - xs.min() + 1),
                            int(ys.max() - ys.min() + 1),
                        ],
                    }
                )
    categories = [{"id": cid, "name": cat, "supercategory": "object"} for cid, cat in sorted(CATEGORIES.items())]
    (OUT / "annotations").mkdir(exist_ok=True)
    info = {"description": "mmdiag fixture: scikit-image sample photographs with hand-traced instances"}
    (OUT / "annotations" / "instances_photos.json").write_text(
        json.dumps({"info": info, "images": images, "annotations": annotations, "categories": categories}, indent=1)
        + "\n"
    )
    (OUT / "annotations" / "captions_photos.json").write_text(
        json.dumps({"info": info, "images": images, "annotations": captions}, indent=1) + "\n"
    )
    print(f"{len(images)} images, {len(annotations)} instances -> {OUT}")


if __name__ == "__main__":
    main()
