"""Question sets follow their split rules; POPE files round-trip; the photo pixels of the file sources: masks equal the
COCO API's and erasing an object edits only its mask (the COCO source's own counterfactuals are tested in
test_real_data_sources.py)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mmdiag.cli import main
from mmdiag.errors import MmdiagError
from mmdiag.metrics.pope_io import read_pope_jsonl, write_pope_jsonl
from mmdiag.scenes.generate import Cooccurrence, SceneRecipe, generate_scenes
from mmdiag.scenes.questions import (
    ObjectStatistics,
    presence_questions,
    relation_questions,
)
from mmdiag.scenes.vocabulary import OBJECT_TYPES
from mmdiag.sources.photos import dilate, load_image, remove_region, rle_mask, segmentation_mask

PRIOR = Cooccurrence("red circle", "green triangle", p=0.95)
SCENES = generate_scenes(120, seed=0, recipe=SceneRecipe(min_objects=1, max_objects=3, cooccurrence=PRIOR))


@pytest.mark.parametrize("split", ["random", "popular", "adversarial"])
def test_presence_questions_are_balanced_and_labels_exact(split):
    questions = presence_questions(SCENES, split)
    by_scene = {s.scene_id: s for s in SCENES}
    for q in questions:
        assert (q.label == "yes") == by_scene[q.scene_id].has(q.subject)
        assert q.text == f"Is there a {q.subject} in the image?"
    per_scene = Counter((q.scene_id, q.label) for q in questions)
    for scene in SCENES:
        assert per_scene[(scene.scene_id, "yes")] == per_scene[(scene.scene_id, "no")] == min(3, len(scene.objects))


def test_popular_negatives_are_the_most_frequent_absent_types():
    stats = ObjectStatistics.of(SCENES)
    for scene in SCENES[:30]:
        negatives = [q.subject for q in presence_questions([scene], "popular", stats=stats) if q.label == "no"]
        absent = [t for t in OBJECT_TYPES if not scene.has(t)]
        top = sorted(absent, key=lambda t: (-stats.frequency[t], t))[: len(negatives)]
        assert negatives == top


def test_adversarial_negatives_are_the_cooccurring_ones():
    """With the planted prior, removing the partner makes it the adversarial negative of the anchor's scenes."""
    stats = ObjectStatistics.of(SCENES)
    anchor_only = [s for s in SCENES if s.has("red circle") and not s.has("green triangle")]
    assert anchor_only
    for scene in anchor_only:
        negatives = [q.subject for q in presence_questions([scene], "adversarial", stats=stats) if q.label == "no"]
        assert negatives[0] == "green triangle"
    random_hits = sum(
        "green triangle"
        in [q.subject for q in presence_questions([s], "random", stats=stats, seed=i) if q.label == "no"]
        for i, s in enumerate(anchor_only)
    )
    assert random_hits < len(anchor_only)


def test_relation_questions_true_and_flipped():
    questions = relation_questions(SCENES[:40])
    by_scene = {s.scene_id: s for s in SCENES}
    for q in questions:
        truth = {(r.subject, r.relation, r.object) for r in by_scene[q.scene_id].relations()}
        assert ((q.subject, q.relation, q.other) in truth) == (q.label == "yes")
    labels = Counter(q.label for q in questions)
    assert labels["yes"] == labels["no"] > 0


def test_pope_export_round_trips(tmp_path):
    questions = presence_questions(SCENES[:10], "adversarial")
    path = write_pope_jsonl(questions, tmp_path / "q.jsonl")
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first)[:4] == ["question_id", "image", "text", "label"]
    back = read_pope_jsonl(path)
    assert [(q.question_id, q.image, q.text, q.label) for q in back] == [
        (q.question_id, q.image, q.text, q.label) for q in questions
    ]
    official = tmp_path / "official.jsonl"
    official.write_text(
        '{"question_id": 0, "image": "COCO_val2014_000000548882.jpg", "image_id": 548882, '
        '"text": "Is there a dining table in the image?", "label": "yes"}\n'
    )
    (q,) = read_pope_jsonl(official)
    assert q.extra == {"image_id": 548882} and q.label == "yes"
    write_pope_jsonl([q], tmp_path / "again.jsonl")
    assert json.loads((tmp_path / "again.jsonl").read_text()) == json.loads(official.read_text())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "image": "x.jpg", "text": "?"}\n')
    with pytest.raises(MmdiagError, match="bad.jsonl:1 lacks label"):
        read_pope_jsonl(bad)


# -- real photos ---------------------------------------------------------------------------------


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE: column-major run lengths, zeros first."""
    counts, value, run = [], False, 0
    for v in mask.T.flatten():
        if bool(v) != value:
            counts.append(run)
            value, run = not value, 0
        run += 1
    counts.append(run)
    return counts


def rle_encode(mask: np.ndarray) -> str:
    """pycocotools' rleToString, written independently of the decoder under test."""
    counts = rle_counts(mask)
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_rle_decoding_by_hand_and_compressed():
    # column-major runs on a 2x3 image: 2 zeros, 3 ones, 1 zero -> [[0,1,1],[0,1,0]]
    assert rle_mask({"counts": [2, 3, 1], "size": [2, 3]}).astype(int).tolist() == [[0, 1, 1], [0, 1, 0]]
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random((37, 53)) < 0.3
        assert np.array_equal(rle_mask({"counts": rle_encode(mask), "size": [37, 53]}), mask)


@pytest.fixture()
def photo_set(tmp_path):
    from sklearn.datasets import load_sample_images

    images = load_sample_images()
    folder = tmp_path / "val2014"
    folder.mkdir()
    names = ["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg"]
    for name, array in zip(names, images.images):
        Image.fromarray(array).save(folder / name, quality=95)
    h, w = images.images[0].shape[:2]
    # hand-written masks: a rectangle "dog" as a polygon, a disc "cat" as compressed RLE
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 200) ** 2 + (xx - 450) ** 2 < 60**2
    annotations = {
        "images": [
            {"id": 1, "file_name": names[0], "height": h, "width": w},
            {"id": 2, "file_name": names[1], "height": h, "width": w},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 18,
                "bbox": [100, 150, 120, 80],
                "segmentation": [[100, 150, 220, 150, 220, 230, 100, 230]],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 17,
                "bbox": [390, 140, 120, 120],
                "segmentation": {"counts": rle_encode(disc), "size": [h, w]},
                "iscrowd": 0,
            },
        ],
    }
    ann_path = tmp_path / "instances.json"
    ann_path.write_text(json.dumps(annotations))
    questions = tmp_path / "pope.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question_id": i, "image": names[0], "text": f"Is there a {c} in the image?", "label": lab})
            + "\n"
            for i, (c, lab) in enumerate([("dog", "yes"), ("car", "no")])
        )
    )
    return folder, ann_path, questions, names, disc


def _masks(ann_path, name):
    """category -> decoded mask of each annotation of image ``name``, by the sources' decoder."""
    data = json.loads(ann_path.read_text())
    info = next(im for im in data["images"] if im["file_name"] == name)
    categories = {c["id"]: c["name"] for c in data["categories"]}
    return {
        categories[a["category_id"]]: segmentation_mask(a["segmentation"], info["height"], info["width"])
        for a in data["annotations"]
        if a["image_id"] == info["id"]
    }


@pytest.mark.parametrize("method", ["fill", "blur"])
def test_object_removal_on_a_real_photo_changes_only_the_mask(photo_set, method):
    folder, ann_path, _, names, disc = photo_set
    image = load_image(folder / names[0])
    masks = _masks(ann_path, names[0])
    assert np.array_equal(masks["cat"], disc)
    edited = np.asarray(remove_region(image, dilate(masks["cat"], 1), method))  # as the COCO source erases
    original = np.asarray(image)
    grown = np.zeros_like(disc)
    grown[1:] |= disc[:-1]
    grown[:-1] |= disc[1:]
    grown[:, 1:] |= disc[:, :-1]
    grown[:, :-1] |= disc[:, 1:]  # noqa: E702
    grown |= disc
    assert np.array_equal(edited[~grown], original[~grown])  # nothing outside the (1-px dilated) mask changed
    assert np.abs(edited[disc].astype(int) - original[disc].astype(int)).mean() > 5  # the object is gone
    ring = grown ^ disc
    # the filled region takes the colours around it
    assert np.abs(edited[disc].mean(0) - original[ring].mean(0)).max() < 40
    dog = masks["dog"]
    assert np.array_equal(dog, coco_api_mask(ann_path, 1, 18))  # pixel-exact with the COCO API
    assert dog[150:230, 100:220].all() and dog.sum() == 120 * 80  # COCO's polygon rasterisation


def coco_api_mask(ann_path, image_id: int, category_id: int) -> np.ndarray:
    """The mask the COCO API itself gives (pycocotools.coco.COCO.annToMask)."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann_path))
    ann = next(a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])) if a["category_id"] == category_id)
    return coco.annToMask(ann).astype(bool)


def test_polygon_and_rle_masks_equal_the_coco_api(tmp_path):
    """Random polygons (several parts, fractional and edge coordinates), uncompressed and compressed RLE."""
    rng = np.random.default_rng(7)
    h, w = 97, 131
    name = "COCO_val2014_000000000009.jpg"
    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    anns = []
    for cat in range(1, 61):
        parts = [
            list(np.round(rng.uniform([-2, -2], [w + 2, h + 2], size=(int(rng.integers(3, 9)), 2)).ravel(), 2))
            for _ in range(int(rng.integers(1, 4)))
        ]
        anns.append(
            {"id": cat, "image_id": 1, "category_id": cat, "bbox": [0, 0, 1, 1], "segmentation": parts, "iscrowd": 0}
        )
    blob = rng.random((h, w)) < 0.2
    anns.append(
        {
            "id": 61,
            "image_id": 1,
            "category_id": 61,
            "bbox": [0, 0, 1, 1],
            "iscrowd": 1,
            "segmentation": {"counts": rle_encode(blob), "size": [h, w]},
        }
    )
    anns.append(
        {
            "id": 62,
            "image_id": 1,
            "category_id": 62,
            "bbox": [0, 0, 1, 1],
            "iscrowd": 1,
            "segmentation": {"counts": rle_counts(blob), "size": [h, w]},
        }
    )
    data = {
        "images": [{"id": 1, "file_name": name, "height": h, "width": w}],
        "annotations": anns,
        "categories": [{"id": c, "name": f"thing{c}"} for c in range(1, 63)],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    masks = _masks(path, name)
    for cat in range(1, 63):
        assert np.array_equal(masks[f"thing{cat}"], coco_api_mask(path, 1, cat)), f"thing{cat}"
    assert np.array_equal(masks["thing61"], blob) and np.array_equal(masks["thing62"], blob)


def test_bad_images_and_masks_are_refused(photo_set):
    folder, _, _, names, _ = photo_set
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(MmdiagError, match="broken.jpg is corrupt or not an image"):
        load_image(folder / "broken.jpg")
    with pytest.raises(ValueError, match="mask shape"):
        remove_region(load_image(folder / names[0]), np.zeros((3, 3), dtype=bool))


def test_scenes_command_writes_a_browsable_set(tmp_path):
    out = tmp_path / "set"
    assert (
        main(
            [
                "scenes",
                "--n",
                "12",
                "--seed",
                "4",
                "--out",
                str(out),
                "--background",
                "mixed",
                "--cooccur",
                "red circle,green triangle,0.9",
            ]
        )
        == 0
    )
    for name in (
        "manifest.jsonl",
        "pope_random.jsonl",
        "pope_popular.jsonl",
        "pope_adversarial.jsonl",
        "relations.jsonl",
        "captions.jsonl",
        "recipe.json",
        "contact_sheet.png",
    ):
        assert (out / name).is_file(), name
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 12
    for row in manifest:
        assert (out / row["image"]).is_file()
        assert Image.open(out / row["image"]).size == (64, 64)
    for q in read_pope_jsonl(out / "pope_random.jsonl"):
        assert (out / "images" / q.image).is_file()
    assert Image.open(out / "contact_sheet.png").width > 64 * 8
    shutil.rmtree(out)
    assert main(["scenes", "--n", "3", "--out", str(out), "--cooccur", "red circle,purple blob,0.9"]) == 2
