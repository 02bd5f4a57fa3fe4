"""The committed sample scene set is exactly what its documented command regenerates (golden files)."""

from __future__ import annotations

from pathlib import Path

from mmdiag.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "scenes-sample"


def test_sample_set_regenerates_byte_for_byte(tmp_path):
    out = tmp_path / "again"
    assert (
        main(
            [
                "scenes",
                "--n",
                "16",
                "--seed",
                "0",
                "--out",
                str(out),
                "--background",
                "mixed",
                "--max-objects",
                "4",
                "--cooccur",
                "red circle,green triangle,0.9",
            ]
        )
        == 0
    )
    committed = sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file())
    assert committed == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for rel in committed:
        if rel.suffix == ".png":  # PNG encoder settings may differ across Pillow versions: compare pixels
            import numpy as np
            from PIL import Image

            assert np.array_equal(np.asarray(Image.open(SAMPLE / rel)), np.asarray(Image.open(out / rel))), rel
        else:
            assert (SAMPLE / rel).read_bytes() == (out / rel).read_bytes(), rel
