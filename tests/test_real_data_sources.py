"""The real-data sources: a COCO folder of real photographs, POPE question files and relation sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from mmdiag import api
from mmdiag.errors import MmdiagError
from mmdiag.run.data_spec import parse_data_spec
from mmdiag.sources.coco import CocoSource
from mmdiag.sources.contract import DataRequest, EditUnavailable
from mmdiag.sources.pope_file import PopeFileSource, object_of, split_of
from mmdiag.sources.relation_sets import RelationSetSource

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "coco-photos"


def test_coco_fixture_examples_follow_the_annotations():
    source = CocoSource(str(FIXTURE))
    data = source.examples(100, seed=0)
    raw = json.loads((FIXTURE / "annotations" / "instances_photos.json").read_text())
    assert len(data) == len(raw["images"]) == source.size()
    coffee = next(ex for ex in data if ex.file_name == "coffee-full.jpg")
    assert sorted(coffee.object_names) == ["cup", "spoon"]
    info = next(im for im in raw["images"] if im["file_name"] == "coffee-full.jpg")
    ann = next(a for a in raw["annotations"] if a["image_id"] == info["id"] and a["category_id"] == 47)
    cup = next(o for o in coffee.objects if o.name == "cup")
    x, y, w, h = ann["bbox"]
    assert cup.bbox() == pytest.approx(
        (x / info["width"], y / info["height"], (x + w) / info["width"], (y + h) / info["height"])
    )
    assert (
        source.example_from_dict(json.loads(json.dumps(coffee.mirrored().without("cup").to_dict()))).to_dict()
        == coffee.mirrored().without("cup").to_dict()
    )
    single = source.examples(100, seed=0, request=DataRequest(min_objects=1, max_objects=1))
    assert len(single) == 16 and all(len(ex.objects) == 1 for ex in single)


def test_coco_removal_changes_only_the_dilated_mask_and_mirroring_flips_relations():
    source = CocoSource(str(FIXTURE))
    moto = next(ex for ex in source.examples(100, 0) if ex.file_name == "motorcycle-full.jpg")
    before, after = np.asarray(moto.image(96)), np.asarray(moto.without("bench").image(96))
    changed = (before != after).any(axis=2)
    bench_ids = [o.annotation_id for o in moto.objects if o.name == "bench"]
    mask = source.mask_of(moto, bench_ids, 96)
    grown = binary_dilation(mask, np.ones((3, 3), bool))  # removal dilates the mask by one pixel
    assert changed.any() and not (changed & ~grown).any()
    flips = {"left of": "right of", "right of": "left of", "above": "above", "below": "below"}
    assert {(r.subject, flips[r.relation], r.object) for r in moto.relations()} == {
        (r.subject, r.relation, r.object) for r in moto.mirrored().relations()
    }
    assert ("bench", "left of", "motorcycle") in {(r.subject, r.relation, r.object) for r in moto.relations()}
    cat = next(ex for ex in source.examples(100, 0) if ex.file_name == "chelsea-full.jpg")
    with pytest.raises(EditUnavailable, match="covers"):
        cat.without("cat")  # nothing left to fill a whole-frame cat from
    with pytest.raises(EditUnavailable):
        cat.recoloured("cat", "red")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["annotations"][0].update(category_id=999), "category_id 999"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "bbox"),
        (lambda d: d["images"][0].update(file_name="../../outside.jpg"), "outside the image folder"),
        (lambda d: d["images"][0].update(file_name="nope.jpg"), "not in"),
    ],
)
def test_coco_bad_entries_are_one_line_errors(tmp_path, change, message):
    folder = tmp_path / "coco"
    shutil.copytree(FIXTURE / "images", folder / "images")
    data = json.loads((FIXTURE / "annotations" / "instances_photos.json").read_text())
    change(data)
    (folder / "annotations").mkdir()
    (folder / "annotations" / "instances_x.json").write_text(json.dumps(data))
    with pytest.raises(MmdiagError, match=message) as err:
        CocoSource(str(folder)).examples(100, 0)
    assert "\n" not in str(err.value) and "instances_x.json" in str(err.value)


def test_pope_files_are_asked_verbatim_and_merged_across_splits(tmp_path):
    assert object_of("Is there a dining table in the image?") == "dining table"
    assert split_of(Path("coco_pope_adversarial.json")) == "adversarial"
    lines = {"random": [("cup", "yes"), ("dog", "no")], "adversarial": [("cup", "yes"), ("spoon", "no")]}
    files = []
    for split, rows in lines.items():
        path = tmp_path / f"coco_pope_{split}.json"
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "question_id": f"{split}{k}",
                        "image": "coffee-full.jpg",
                        "text": f"Is there a {o} in the image?",
                        "label": lab,
                    }
                )
                + "\n"
                for k, (o, lab) in enumerate(rows)
            )
        )
        files.append(str(path))
    source = PopeFileSource(",".join(files), str(FIXTURE / "images"))
    (example,) = source.examples(10, 0)
    from mmdiag.metrics.pope_sampling import ObjectStatistics
    from mmdiag.probes.hallucination.plan import pope_items

    items = pope_items(example, 0, ObjectStatistics.of([example]), 0, 3, source.vocabulary())
    assert {(i.object, i.label, i.splits) for i in items} == {
        ("cup", "yes", ("random", "adversarial")),
        ("dog", "no", ("random",)),
        ("spoon", "no", ("adversarial",)),
    }
    (tmp_path / "bad.json").write_text(
        json.dumps({"question_id": 1, "image": "../x.jpg", "text": "t", "label": "yes"}) + "\n"
    )
    with pytest.raises(MmdiagError, match="outside"):
        PopeFileSource(str(tmp_path / "bad.json"), str(FIXTURE / "images")).examples(10, 0)


def test_relation_sets_read_vsr_and_whatsup(tmp_path):
    vsr = tmp_path / "vsr.jsonl"
    vsr.write_text(
        json.dumps(
            {
                "image": "motorcycle-full.jpg",
                "caption": "The bench is left of the motorcycle.",
                "label": 1,
                "relation": "left of",
                "subj": "bench",
                "obj": "motorcycle",
            }
        )
        + "\n"
        + json.dumps(
            {
                "image": "motorcycle-full.jpg",
                "caption": "The bench is above the motorcycle.",
                "label": 0,
                "relation": "above",
            }
        )
        + "\n"
    )
    first, second = RelationSetSource(str(vsr), str(FIXTURE / "images")).examples(10, 0)
    assert first.statement.options == ("The bench is left of the motorcycle.", "The motorcycle is left of the bench.")
    assert first.statement.is_choice and second.statement.label == "no"
    whatsup = tmp_path / "whatsup.json"
    whatsup.write_text(
        json.dumps(
            [
                {
                    "image_path": "data/controlled_images/coffee-full.jpg",
                    "caption_options": ["A spoon to the right of a cup", "A spoon to the left of a cup"],
                }
            ]
        )
    )
    (ex,) = RelationSetSource(str(whatsup), str(FIXTURE / "images")).examples(10, 0)
    assert ex.object_names == ["spoon", "cup"] and ex.statement.relation == "to the right of"


def test_data_spec_errors():
    assert parse_data_spec("coco:/x", None) == ("coco", {"root": "/x", "images": None})
    for spec, images, message in (
        ("pope:/q.json", None, "needs --images"),
        ("coco:", None, "name the folder"),
        (None, "/imgs", "--images goes with"),
    ):
        with pytest.raises(MmdiagError, match=message):
            parse_data_spec(spec, images)


@pytest.mark.slow
def test_coco_photos_run_every_probe_end_to_end(tiny_paths, tmp_path):
    config = api.AuditConfig(
        n_examples=25,
        data="coco",
        data_params={"root": str(FIXTURE), "images": None},
        resolution=64,
        batch_size=8,
        probe_params={
            "attention": {"untrained_baseline": False},
            "hallucination": {"free_text": False},
            "spatial": {"min_scenes": 10, "untrained_baseline": False, "null_permutations": 9, "llm_layers": ["last"]},
        },
    )
    results = api.audit(str(tiny_paths["llava"]), tmp_path / "run", config, progress=False).results
    probes = results["probes"]
    assert set(probes) == {"attention", "spatial", "hallucination"} and not any("error" in p for p in probes.values())
    assert probes["spatial"]["scores"]["projector"]["centre_x"]["n"] == 16  # the single-object photos
    records = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    edits = {cf["edit"] for r in records if r["probe"] == "hallucination" for cf in r["values"]["counterfactuals"]}
    assert "remove" in edits and "swap" not in edits
    assert probes["hallucination"]["chair"]["rules"].startswith("Rohrbach")


@pytest.mark.parametrize(
    "name, image",
    [("coco_qa_two_obj.json", "val2017/000000000139.jpg"), ("vg_qa_one_obj.json", "vg_images/2345.jpg")],
)
def test_whatsup_list_subsets_read_where_the_benchmark_opens_their_images(tmp_path, name, image):
    images = tmp_path / "whatsup"
    (images / image).parent.mkdir(parents=True)
    shutil.copy(FIXTURE / "images" / "coffee-full.jpg", images / image)
    image_id = 139 if name.startswith("coco") else "2345"
    path = tmp_path / name
    path.write_text(json.dumps([[image_id, "A cup to the left of a spoon", "A cup to the right of a spoon"]]))
    (ex,) = RelationSetSource(str(path), str(images)).examples(10, 0)
    assert ex.image_name == image and ex.statement.is_choice
    assert ex.statement.options == ("A cup to the left of a spoon", "A cup to the right of a spoon")
    assert ex.object_names == ["cup", "spoon"] and ex.statement.relation == "to the left of"
    path.write_text(json.dumps([[image_id, "A cup to the left of a spoon"]]))
    with pytest.raises(MmdiagError, match=r"\[image_id, true caption, false caption\]"):
        RelationSetSource(str(path), str(images)).examples(10, 0)


VSR_HEADS = Path(__file__).parent / "golden" / "relation_sets"  # VSR's own test splits, first lines unedited


def _vsr_images(head: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for line in head.read_text().splitlines():
        shutil.copy(FIXTURE / "images" / "motorcycle-full.jpg", folder / json.loads(line)["image"])
    return folder


def test_vsr_random_split_without_objects_leaves_the_attention_probe_out_with_the_reason(tmp_path):
    heads = {split: VSR_HEADS / f"vsr_{split}_test_head.jsonl" for split in ("random", "zeroshot")}
    images = {split: _vsr_images(head, tmp_path / split) for split, head in heads.items()}
    probes = {}
    for split, head in heads.items():
        config = api.AuditConfig(data="relations", data_params={"path": str(head), "images": str(images[split])})
        plan = api.plan_audit(None, tmp_path / f"run-{split}", config, progress=False, fit_probes_to_data=True)
        probes[split] = [p.name for p in plan.probes]
        if split == "random":
            (note,) = [n for n in plan.notes if n.startswith("attention:")]
            assert "names no object" in note and "zero-shot" in note
    assert probes == {"random": ["relations"], "zeroshot": ["attention", "relations"]}
    first, second, *_ = RelationSetSource(str(heads["zeroshot"]), str(images["zeroshot"])).examples(10, 0)
    assert first.statement.options == ("The car is behind the suitcase.", "The suitcase is behind the car.")
    assert second.statement.label == "no" and second.object_names == ["cat", "backpack"]


def test_pope_file_limit_needs_only_the_images_it_chose(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(FIXTURE / "images" / "coffee-full.jpg", images / name)
    questions = tmp_path / "coco_pope_random.json"
    questions.write_text(
        "".join(
            json.dumps({"question_id": k, "image": image, "text": "Is there a cup in the image?", "label": "yes"})
            + "\n"
            for k, image in enumerate(["a.jpg", "b.jpg", "missing.jpg"])
        )
    )
    config = api.AuditConfig(data="pope", data_params={"questions": str(questions), "images": str(images)})
    options = {"progress": False, "fit_probes_to_data": True, "n_examples": "all"}
    plan = api.plan_audit(None, tmp_path / "run", config, limit="2", **options)
    assert plan.config.n_examples == 2 and plan.limited_from == 3
    with pytest.raises(MmdiagError, match="names image 'missing.jpg'"):
        api.plan_audit(None, tmp_path / "run", config, **options)
