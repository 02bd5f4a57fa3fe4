"""The data-source contract: the scenes implement it, and a second source written as one file
(tests/photo_boxes_source.py) plus a registry entry runs every probe, with what it cannot give said."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdiag import api
from mmdiag.sources import DataRequest, Example, ExampleObject, SourceRegistry, object_patch_mask
from mmdiag.sources.contract import EditUnavailable
from mmdiag.sources.scenes import SceneSource

sys.path.insert(0, str(Path(__file__).parent))
from photo_boxes_source import PhotoBoxSource  # noqa: E402


@pytest.mark.parametrize("source", [SceneSource(), PhotoBoxSource()], ids=["scenes", "photo-boxes"])
def test_sources_keep_the_contract(source):
    data = source.examples(12, seed=3)
    assert len(data) == 12 and data.source is source
    again = source.examples(12, seed=3)
    assert [ex.to_dict() for ex in data] == [ex.to_dict() for ex in again]  # deterministic in the seed
    for ex in data:
        assert isinstance(ex, Example) and all(isinstance(o, ExampleObject) for o in ex.objects)
        assert set(ex.object_names) <= set(source.vocabulary())
        image = ex.image(64)
        assert image.size == (64, 64)
        mask = ex.object_mask(64)
        assert mask.shape == (64, 64) and mask.any()
        assert source.example_from_dict(json.loads(json.dumps(ex.to_dict()))).to_dict() == ex.to_dict()
        patches = object_patch_mask(ex, (4, 4))
        for obj in ex.objects:  # the patch holding each centre is marked
            assert patches[min(int(obj.cy * 4), 3), min(int(obj.cx * 4), 3)]
        for edit in ("remove", "mirror", "recolour", "insert"):
            call = {
                "remove": lambda ex=ex: ex.without(ex.object_names[0]),
                "mirror": lambda ex=ex: ex.mirrored("horizontal"),
                "recolour": lambda ex=ex: ex.recoloured(ex.object_names[0], "yellow"),
                "insert": lambda ex=ex: ex.with_object("green triangle", (0.5, 0.5)),
            }[edit]
            if edit not in source.edits:
                with pytest.raises(EditUnavailable):
                    call()
    single = source.examples(6, seed=1, request=DataRequest(min_objects=1, max_objects=1))
    assert all(len(ex.objects) == 1 for ex in single)


def test_counterfactuals_change_the_ground_truth_and_the_pixels():
    ex = next(e for e in PhotoBoxSource().examples(20, seed=2) if len(e.objects) == 2)
    gone = ex.without(ex.object_names[0])
    assert not gone.has(ex.object_names[0]) and gone.has(ex.object_names[1])
    assert not np.array_equal(np.asarray(gone.image(64)), np.asarray(ex.image(64)))
    mirrored = ex.mirrored()
    flips = {"left of": "right of", "right of": "left of", "above": "above", "below": "below"}
    assert {(r.subject, flips[r.relation], r.object) for r in ex.relations()} == {
        (r.subject, r.relation, r.object) for r in mirrored.relations()
    }


def test_unknown_source_is_a_one_line_error():
    from mmdiag.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown data source 'coco-nope'"):
        SourceRegistry().create("coco-nope")


def test_a_second_source_runs_every_probe_and_says_what_it_cannot_measure(tiny_paths, tmp_path):
    registry = SourceRegistry(load_entry_points=False)
    registry.register("photo-boxes", PhotoBoxSource)  # the one registry entry
    config = api.AuditConfig(
        n_examples=12,
        data="photo-boxes",
        batch_size=4,
        probe_params={
            "attention": {"untrained_baseline": False},
            "hallucination": {"free_text": False, "captions": False},
            "spatial": {"min_scenes": 12, "untrained_baseline": False, "null_permutations": 9, "llm_layers": ["last"]},
        },
    )
    outcome = api.audit(str(tiny_paths["llava"]), tmp_path / "run", config, progress=False, sources=registry)
    results = outcome.results
    assert results["metadata"]["config"]["data"] == "photo-boxes"
    records = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    assert {r["probe"] for r in records} == {"attention", "spatial", "hallucination"}
    assert not any("error" in r for r in records)
    assert all(r["example_id"].startswith("photo-") for r in records)
    hallucination = results["probes"]["hallucination"]
    edits = {cf["edit"] for r in records if r["probe"] == "hallucination" for cf in r["values"]["counterfactuals"]}
    assert edits <= {"remove", "mirror", "remove_cooccurring"}  # no recolouring: the source cannot make it
    assert "swap" not in hallucination["counterfactuals"] or not hallucination["counterfactuals"]["swap"].get("n")
    spatial = results["probes"]["spatial"]
    labels = [r["values"]["labels"] for r in records if r["probe"] == "spatial"]
    assert all(lab["colour"] is None and lab["left_of"] is None for lab in labels)  # no attributes, no insertion
    colour = spatial["scores"]["projector"]["colour"]
    assert colour["score"] is None and colour["undefined"]  # a row saying why, not a silent gap
    assert spatial["scores"]["projector"]["centre_x"]["n"] == 12  # positions are measured on it
    html = (tmp_path / "run" / "report.html").read_text()
    assert "photo-" in html  # the report re-made the source's images from examples.jsonl


def test_a_source_installed_as_an_entry_point_is_found(tmp_path, monkeypatch):
    dist = tmp_path / "boxes_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: boxes-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmdiag.sources]\nphoto-boxes = photo_boxes_source:PhotoBoxSource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert SourceRegistry().get("photo-boxes") is PhotoBoxSource


def test_ls_lists_the_data_sources(capsys):
    from mmdiag.cli import main

    assert main(["ls"]) == 0
    assert "data sources: scenes" in capsys.readouterr().out
