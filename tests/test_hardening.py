"""Hardening on real data (issue 36): no opt-in by accident, a run never mixes inputs, COCO ground truth checked,
one line per mistake, nothing deleted before the new run has started.

The one-line refusals of the command line are a table (:data:`CASES`) run by the same harness as
``test_bad_inputs.py``: exit 2, one line starting ``mmdiag: error:`` with the expected words, no traceback, and the
finished run folder that an ``--overwrite`` would replace unchanged byte for byte. The rest are behaviours: the
remote-code marker, EXIF orientation, 16-bit photos, COCO's RLE strings against pycocotools, resume after an input
changed, an overwrite that fails, the last-resort handler, the report finding its data, Markdown links.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import QUICK, check_one_line_refusal, snapshot
from PIL import Image
from test_bad_inputs import ON_RUN, QUESTION

from mmdiag import api
from mmdiag.cli import main
from mmdiag.errors import MmdiagError

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "coco-photos"
INSTANCES = "annotations/instances_photos.json"


def _coco(tmp: Path, edit: Callable[[dict], None] | None = None, text: Callable[[str], str] | None = None) -> Path:
    """A copy of the COCO photo fixture with its instances JSON edited (as data, or as text for NaN/Infinity)."""
    folder = tmp / "coco"
    if not folder.exists():
        shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("*.py"))
    data = json.loads((folder / INSTANCES).read_text())
    if edit:
        edit(data)
    raw = json.dumps(data)
    (folder / INSTANCES).write_text(text(raw) if text else raw)
    return folder


def _ann(index: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["annotations"][index].update(changes)


def _image(index: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["images"][index].update(changes)


def _same_id(kind: str) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        d[kind][1]["id"] = d[kind][0]["id"]

    return edit


def _coco_case(edit: Callable[[dict], None] | None = None, text: Callable[[str], str] | None = None):
    return lambda t, r, m: {"x": _coco(t, edit, text)}


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return path


def _pope_lines(tmp: Path, *lines: str) -> Path:
    (tmp / "images").mkdir(exist_ok=True)
    return _write(tmp / "questions.jsonl", "".join(line + "\n" for line in lines))


QLINE = json.dumps({**QUESTION, "image": "a.png"})
TEMPLATE_NO_IMAGE = (
    "{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endfor %}"
)
COCO_RUN = ON_RUN + " --data coco:{x}"

# id -> (command template, setup(tmp, run, tiny) -> placeholders, words the one line must hold)
CASES: dict[str, tuple[str, Callable, tuple[str, ...]]] = {
    # booleans and security options
    "model-args-bool-garbage": (
        ON_RUN + " --model-args trust_remote_code=maybe",
        lambda t, r, m: {},
        ("trust_remote_code must be true or false",),
    ),
    "model-args-pickle-garbage": (
        ON_RUN + " --model-args allow_pickle=sure",
        lambda t, r, m: {},
        ("allow_pickle must be true or false",),
    ),
    # numbers and options, all before the model loads
    "limit-nan": (ON_RUN + " --limit nan", lambda t, r, m: {}, ("--limit", "finite")),
    "limit-inf": (ON_RUN + " --limit inf", lambda t, r, m: {}, ("--limit", "finite")),
    "limit-minus-inf": (ON_RUN + " --limit=-inf", lambda t, r, m: {}, ("--limit",)),
    "gen-kwargs-temperature-nan": (
        ON_RUN + " --gen-kwargs temperature=nan,do_sample=true",
        lambda t, r, m: {},
        ("'temperature'", "got nan"),
    ),
    "gen-kwargs-num-beams-zero": (
        ON_RUN + " --gen-kwargs num_beams=0",
        lambda t, r, m: {},
        ("'num_beams' must be from 1",),
    ),
    "gen-kwargs-top-p-5": (ON_RUN + " --gen-kwargs top_p=5", lambda t, r, m: {}, ("'top_p' must be above 0 to 1",)),
    "gen-kwargs-huge-budget": (
        ON_RUN + " --gen-kwargs max_new_tokens=1e9",
        lambda t, r, m: {},
        ("'max_new_tokens'", "8192"),
    ),
    "gen-kwargs-do-sample-word": (
        ON_RUN + " --gen-kwargs do_sample=perhaps",
        lambda t, r, m: {},
        ("'do_sample' must be true or false",),
    ),
    "attn-flash-on-cpu": (
        ON_RUN + " --model-args attn_implementation=flash_attention_2",
        lambda t, r, m: {},
        ("flash_attention_2 cannot run here", "use sdpa or eager"),
    ),
    "attn-unknown": (
        ON_RUN + " --model-args attn_implementation=warp",
        lambda t, r, m: {},
        ("not an attention implementation",),
    ),
    "chat-template-syntax": (
        ON_RUN + " --chat-template {x}",
        lambda t, r, m: {"x": _write(t / "t.jinja", "{% for m in messages %}{{ m['role'] }")},
        ("cannot render a sample prompt", "TemplateSyntaxError"),
    ),
    "chat-template-no-image": (
        ON_RUN + " --chat-template {x}",
        lambda t, r, m: {"x": _write(t / "t.jinja", TEMPLATE_NO_IMAGE)},
        ("writes nothing for the image", "no image placeholder"),
    ),
    "chat-template-raises": (
        ON_RUN + " --chat-template {x}",
        lambda t, r, m: {"x": _write(t / "t.jinja", "{{ raise_exception('no images here') }}")},
        ("cannot render a sample prompt", "no images here"),
    ),
    # COCO ground truth
    "coco-duplicate-image-id": (COCO_RUN, _coco_case(_same_id("images")), ("image entries 0 and 1 share the id",)),
    "coco-duplicate-annotation-id": (
        COCO_RUN,
        _coco_case(_same_id("annotations")),
        ("annotation entries 0 and 1 share the id",),
    ),
    "coco-duplicate-category-id": (
        COCO_RUN,
        _coco_case(_same_id("categories")),
        ("category entries 0 and 1 share the id",),
    ),
    "coco-width-true": (COCO_RUN, _coco_case(_image(0, width=True)), ("width True", "positive integers")),
    "coco-id-true": (COCO_RUN, _coco_case(_image(0, id=True)), ("has id True", "integers")),
    "coco-declared-huge": (COCO_RUN, _coco_case(_image(0, width=30000, height=30000)), ("declares 30000x30000",)),
    "coco-size-not-the-file": (COCO_RUN, _coco_case(_image(0, width=300)), ("declares 300x200 but", "is 200x200")),
    "coco-iscrowd-text": (COCO_RUN, _coco_case(_ann(0, iscrowd="0")), ("iscrowd '0'",)),
    "coco-area-text": (COCO_RUN, _coco_case(_ann(0, area="big")), ("area 'big'",)),
    "coco-bbox-infinity": (
        COCO_RUN,
        _coco_case(_ann(0, bbox=[1, 2, 3, 999999]), lambda s: s.replace("999999", "Infinity")),
        ("four finite numbers",),
    ),
    "coco-bbox-nan": (
        COCO_RUN,
        _coco_case(_ann(0, bbox=[1, 2, 3, 999999]), lambda s: s.replace("999999", "NaN")),
        ("four finite numbers",),
    ),
    "coco-bbox-negative": (COCO_RUN, _coco_case(_ann(0, bbox=[10, 10, -5, 20])), ("width -5", "above 0")),
    "coco-bbox-zero": (COCO_RUN, _coco_case(_ann(0, bbox=[10, 10, 0, 20])), ("width 0", "above 0")),
    "coco-bbox-outside": (COCO_RUN, _coco_case(_ann(0, bbox=[500, 500, 10, 10])), ("outside its 200x200 image",)),
    "coco-rle-wrong-size": (
        COCO_RUN,
        _coco_case(_ann(0, segmentation={"size": [10, 10], "counts": [100]})),
        ("RLE of size [10, 10]", "200x200"),
    ),
    "coco-rle-garbage": (
        COCO_RUN,
        _coco_case(_ann(0, segmentation={"size": [200, 200], "counts": "garbage!!"})),
        ("compressed RLE that does not decode",),
    ),
    "coco-rle-empty": (
        COCO_RUN,
        _coco_case(_ann(0, segmentation={"size": [200, 200], "counts": ""})),
        ("covering 0 pixels",),
    ),
    "coco-rle-short": (
        COCO_RUN,
        _coco_case(_ann(0, segmentation={"size": [200, 200], "counts": [100, 50]})),
        ("covering 150 pixels",),
    ),
    "coco-polygon-text": (COCO_RUN, _coco_case(_ann(0, segmentation=[["a", "b", "c", "d", "e", "f"]])), ("polygon",)),
    "coco-captions-truncated": (
        COCO_RUN,
        lambda t, r, m: {"x": _truncated_captions(_coco(t))},
        ("captions_photos.json is not a COCO captions file",),
    ),
    # POPE files
    "pope-text-a-number": (
        "pope --questions {x} --answers {a}",
        lambda t, r, m: {
            "x": _pope_lines(t, json.dumps({**QUESTION, "text": 5, "image": "a.png"})),
            "a": _write(t / "a.jsonl", '{"question_id": 1, "answer": "yes"}\n'),
        },
        ("has text 5",),
    ),
    "pope-bare-number": (
        "pope --questions {x} --answers {x}",
        lambda t, r, m: {"x": _pope_lines(t, "5")},
        ("is a JSON int, not an object",),
    ),
    "pope-binary-questions": (
        "pope --questions {x} --answers {x}",
        lambda t, r, m: {"x": _write(t / "q.jsonl", b"\x89PNG\r\n\x1a\n\xff\xfe")},
        ("is not UTF-8 text",),
    ),
    "pope-duplicate-ids": (
        "pope --questions {x} --answers {a}",
        lambda t, r, m: {
            "x": _pope_lines(t, QLINE, QLINE),
            "a": _write(t / "a.jsonl", '{"question_id": 1, "answer": "Yes"}\n'),
        },
        ("share question_id 1",),
    ),
    "pope-answers-line-a-list": (
        "pope --questions {q} --answers {a}",
        lambda t, r, m: {"q": _pope_lines(t, QLINE), "a": _write(t / "a.jsonl", "[1, 2]\n")},
        ("item 1 is a JSON int, not an object",),
    ),
    "pope-answers-conflict": (
        "pope --questions {q} --answers {a}",
        lambda t, r, m: {
            "q": _pope_lines(t, QLINE),
            "a": _write(t / "a.jsonl", '{"question_id": 1, "answer": "yes"}\n{"question_id": 1, "answer": "no"}\n'),
        },
        ("answer question_id 1 differently",),
    ),
    "audit-pope-data-duplicate-ids": (
        ON_RUN + " --data pope:{x} --images {tmp}/images",
        lambda t, r, m: {"x": _pope_lines(t, QLINE, QLINE)},
        ("share question_id 1",),
    ),
    # report and compare
    "report-nan-in-results": ("report {x}", lambda t, r, m: {"x": _nan_results(r, t)}, ("holds NaN",)),
    "compare-out-inside-a-run": (
        "compare {run} {run} --out {run}/cmp",
        lambda t, r, m: {},
        ("inside the compared run",),
    ),
    "compare-out-is-another-run": (
        "compare {run} {run} --out {x}",
        lambda t, r, m: {"x": _other_run(r, t)},
        ("holds a run",),
    ),
    "report-data-elsewhere-wrong-kind": (
        "report {run} --data pope:{tmp}/q.jsonl --images {tmp}",
        lambda t, r, m: {},
        ("was measured on scenes data",),
    ),
    # a folder holding only an old results.json is a run too
    "out-holds-only-results": (
        "audit --out {x} --no-progress --suite {quick} --model {clip}",
        lambda t, r, m: {"x": _write(t / "old" / "results.json", "{}").parent},
        ("already holds a run (results.json)",),
    ),
}


def _truncated_captions(folder: Path) -> Path:
    captions = folder / "annotations" / "captions_photos.json"
    captions.write_text(captions.read_text()[:200])
    return folder


def _nan_results(run: Path, tmp: Path) -> Path:
    copy = tmp / "nan-run"
    shutil.copytree(run, copy)
    text = (copy / "results.json").read_text()
    (copy / "results.json").write_text(text.replace('"value": 0', '"value": NaN', 1))
    assert "NaN" in (copy / "results.json").read_text()
    return copy


def _other_run(run: Path, tmp: Path) -> Path:
    copy = tmp / "other-run"
    shutil.copytree(run, copy)
    return copy


def test_the_table_covers_the_issue():
    assert len(CASES) >= 45


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistake_is_one_line_exit_2_before_the_run_is_touched(case, tmp_path, tiny_paths, finished_run, capsys):
    check_one_line_refusal(CASES[case], tmp_path, finished_run, tiny_paths, capsys)


# -- remote code: no spelling of "no" opts in -------------------------------------------------------------------

EVIL = """from pathlib import Path
Path({marker!r}).write_text("the checkpoint's own code ran")
from transformers import LlavaConfig as EvilConfig
"""


def _remote_code_checkpoint(src: Path, dst: Path, marker: Path) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["architectures"] = ["EvilForConditionalGeneration"]
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForImageTextToText": "evil.EvilModel"}
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "evil.py").write_text(EVIL.format(marker=str(marker)))
    return dst


@pytest.mark.parametrize(
    "opt_out",
    [
        "--model-args trust_remote_code=no",
        "--model-args trust_remote_code=off",
        "--model-args trust_remote_code=FALSE",
        "--model-args trust_remote_code=0",
        """--model-args '{"trust_remote_code": "false"}'""",
        "",
    ],
)
def test_an_opt_out_in_words_never_runs_the_checkpoints_code(opt_out, tmp_path, tiny_paths, capsys):
    marker = tmp_path / "marker"
    model = _remote_code_checkpoint(tiny_paths["llava"], tmp_path / "evil", marker)
    code = main(shlex.split(f"audit --model {model} --out {tmp_path / 'run'} --suite {QUICK} --no-progress {opt_out}"))
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists(), err
    assert "needs its own Python code" in err and "--trust-remote-code" in err and len(err.strip().splitlines()) == 1


# -- COCO pixels: EXIF orientation, bit depth, RLE strings ------------------------------------------------------


def _rotated_photo_folder(tmp: Path, declare_stored_size: bool = False) -> tuple[Path, tuple[int, int, int, int]]:
    """A photo stored rotated with EXIF orientation 6 (viewers turn it 90° clockwise): shown 120 wide and 80 high
    with a red block at x 10..40, y 50..70 on grey; its annotation is in the shown frame."""
    shown = np.full((80, 120, 3), 128, dtype=np.uint8)
    box = (10, 50, 30, 20)  # x, y, w, h in the shown frame
    shown[50:70, 10:40] = (255, 0, 0)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # 80 wide, 120 high: turned back by tag 6
    exif = Image.Exif()
    exif[0x0112] = 6
    folder = tmp / "rotated"
    (folder / "images").mkdir(parents=True)
    stored.save(folder / "images" / "turned.png", exif=exif)
    width, height = (80, 120) if declare_stored_size else (120, 80)
    data = {
        "images": [{"id": 1, "file_name": "turned.png", "width": width, "height": height}],
        "categories": [{"id": 1, "name": "block"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": list(box),
                "area": 600,
                "iscrowd": 0,
                "segmentation": [[10, 50, 40, 50, 40, 70, 10, 70]],
            }
        ],
    }
    (folder / "instances_rot.json").write_text(json.dumps(data))
    return folder, box


def test_exif_orientation_is_applied_with_boxes_and_masks_in_the_shown_frame(tmp_path):
    from mmdiag.sources.coco import CocoSource

    folder, (x, y, w, h) = _rotated_photo_folder(tmp_path)
    source = CocoSource(str(folder / "instances_rot.json"), str(folder / "images"))
    source.check(10, 0, [(None, "test")])
    example = source.examples(10, 0)[0]
    image = np.asarray(source.render(example, 120)).astype(int)  # squashed to 120 x 120
    mask = example.object_mask(120)
    red = (image[..., 0] > 200) & (image[..., 1] < 60)
    assert red.sum() > 500 and (red & mask).sum() / red.sum() > 0.95  # the object's pixels are where its mask is
    assert example.objects[0].box == pytest.approx((x / 120, y / 80, (x + w) / 120, (y + h) / 80))
    raw = np.asarray(Image.open(folder / "images" / "turned.png").convert("RGB").resize((120, 120))).astype(int)
    raw_red = (raw[..., 0] > 200) & (raw[..., 1] < 60)
    assert (raw_red & mask).sum() / raw_red.sum() < 0.2  # ignoring the tag (the old behaviour) misplaces it


def test_a_size_declared_in_the_unrotated_frame_is_refused_naming_the_orientation(tmp_path):
    from mmdiag.sources.coco import CocoSource

    folder, _ = _rotated_photo_folder(tmp_path, declare_stored_size=True)
    with pytest.raises(MmdiagError, match="declares 80x120 but turned.png is 120x80.*EXIF orientation 6"):
        CocoSource(str(folder / "instances_rot.json"), str(folder / "images")).check(10, 0, [(None, "t")])


@pytest.mark.parametrize("mode", ["I;16", "P", "CMYK", "LA", "F"])
def test_photos_of_every_mode_reach_the_model_as_their_pixels(tmp_path, mode):
    from mmdiag.sources.photos import load_image

    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    if mode == "I;16":
        image = Image.fromarray((ramp * 65535).astype(np.uint16))
    elif mode == "F":
        image = Image.fromarray(ramp.astype(np.float32), mode="F")
    else:
        image = Image.fromarray((ramp * 255).astype(np.uint8), mode="L").convert(mode)
    path = tmp_path / f"photo.{'tiff' if mode in ('CMYK', 'F') else 'png'}"
    image.save(path)
    pixels = np.asarray(load_image(path)).astype(float)
    assert pixels.shape == (64, 64, 3)
    assert abs(pixels.mean() - 127.5) < 4 and pixels[0, 0].max() < 10 and pixels[-1, -1].min() > 245, mode


def test_compressed_rle_strings_decode_as_pycocotools_encodes_them():
    from pycocotools import mask as coco_mask

    from mmdiag.sources.coco_checks import rle_string_counts

    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = rng.integers(1, 60, size=2)
        mask = np.asfortranarray(rng.random((h, w)) < rng.random())
        counts = rle_string_counts(coco_mask.encode(mask)["counts"].decode())
        flat = mask.flatten(order="F")
        runs, value, start = [], False, 0
        for i, v in enumerate(flat):
            if v != value:
                runs.append(i - start)
                start, value = i, v
        runs.append(len(flat) - start)
        assert counts == runs and sum(counts) == h * w
    for bad in ("!!", "1\x7f", "j"):  # outside the alphabet / ends inside a number ('j' has the 'more' bit)
        with pytest.raises(ValueError):
            rle_string_counts(bad)


# -- a run never mixes inputs -----------------------------------------------------------------------------------

COCO_QUICK = ["--suite", QUICK, "--no-progress", "--limit", "4"]


def test_resume_after_the_data_changed_is_refused_naming_the_file(tmp_path, tiny_paths, capsys):
    folder = _coco(tmp_path)
    run = tmp_path / "run"
    base = ["audit", "--model", str(tiny_paths["clip"]), "--out", str(run), "--data", f"coco:{folder}", *COCO_QUICK]
    assert main(base) == 0
    records = (run / "examples.jsonl").read_text()
    assert main([*base, "--resume"]) == 0  # nothing changed: resumes (every example already done)
    data = json.loads((folder / INSTANCES).read_text())
    data["categories"][0]["name"] = "giraffe"
    (folder / INSTANCES).write_text(json.dumps(data))
    capsys.readouterr()
    assert main([*base, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume refused: data file" in err and "instances_photos.json changed" in err
    (folder / INSTANCES).write_text(
        json.dumps({**data, "categories": json.loads((FIXTURE / INSTANCES).read_text())["categories"]})
    )
    photo = sorted((folder / "images").iterdir())[0]
    Image.open(photo).rotate(180).save(photo)
    capsys.readouterr()
    assert main([*base, "--resume"]) == 2
    assert "image list of the coco data changed" in capsys.readouterr().err
    assert (run / "examples.jsonl").read_text() == records


def test_an_overwrite_that_fails_before_its_first_record_keeps_the_old_run(
    tmp_path, finished_run, tiny_paths, monkeypatch
):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a probe")

    monkeypatch.setattr(api, "run_probe", broken)
    with pytest.raises(RuntimeError):
        api.audit(str(tiny_paths["clip"]), run, _quick(), overwrite=True, progress=False)
    assert snapshot(run) == before and not (run / ".replaced").exists()


def test_an_overwrite_drops_the_old_run_once_its_first_record_is_written(
    tmp_path, finished_run, tiny_paths, monkeypatch
):
    from mmdiag.run import runtime

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    real = runtime.run_probe
    calls = []

    def second_probe_breaks(probe, *args, **kwargs):
        calls.append(probe.name)
        if len(calls) > 1:
            raise RuntimeError("a bug in the second probe")
        return real(probe, *args, **kwargs)

    monkeypatch.setattr(api, "run_probe", second_probe_breaks)
    with pytest.raises(RuntimeError):
        api.audit(str(tiny_paths["clip"]), run, _quick(), overwrite=True, progress=False)
    left = {p.name for p in run.iterdir()}
    assert "examples.jsonl" in left and "run-identity.json" in left
    assert not left & {"results.json", "report.html", "report.md", ".replaced"}  # nothing stale beside the new run
    probes = {json.loads(line)["probe"] for line in (run / "examples.jsonl").read_text().splitlines()}
    assert probes == {calls[0]}


def test_an_overwrite_killed_while_the_old_run_was_aside_gets_it_back(tmp_path, finished_run):
    from mmdiag.run.store import ReplacedRun, claim_run_dir

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    ReplacedRun(run).set_aside()  # then the process died: no record of the new run was written
    (run / "run-identity.json").write_text("{}")
    with claim_run_dir(run, overwrite=False, resume=True):
        pass
    assert snapshot(run) == before


def _quick():
    from mmdiag.run.suites import load_suite

    return load_suite(QUICK).config


# -- no traceback reaches a user ---------------------------------------------------------------------------------


def test_an_internal_error_is_one_line_exit_3_with_the_trace_saved(tmp_path, monkeypatch, capsys):
    from mmdiag import cli

    def bug(args):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "ls", bug)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["ls"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmdiag: internal error: KeyError: 'a bug'")
    logs = list(tmp_path.glob("mmdiag-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err and "Traceback" in logs[0].read_text()


def test_an_internal_error_in_an_audit_saves_its_trace_in_the_run_folder(tmp_path, tiny_paths, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("inside a probe")

    monkeypatch.setattr(api, "run_probe", broken)
    run = tmp_path / "run"
    code = main(["audit", "--model", str(tiny_paths["clip"]), "--out", str(run), "--suite", QUICK, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and "ZeroDivisionError: inside a probe" in err
    assert f"--model {tiny_paths['clip']}" in err and str(run / "mmdiag-error.log") in err
    assert "Traceback" in (run / "mmdiag-error.log").read_text()


# -- reports -------------------------------------------------------------------------------------------------------


def test_report_finds_the_data_from_another_folder_or_says_how_to_point_at_it(
    tmp_path, tiny_paths, monkeypatch, capsys
):
    work = tmp_path / "work"
    work.mkdir()
    _coco(work)
    monkeypatch.chdir(work)
    assert main(["audit", "--model", str(tiny_paths["clip"]), "--out", "run", "--data", "coco:coco", *COCO_QUICK]) == 0
    pictures = (work / "run" / "report.html").read_text().count("data:image/png")
    assert pictures > 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", str(work / "run")]) == 0  # the relative path does not resolve here: the recorded one does
    assert (work / "run" / "report.html").read_text().count("data:image/png") == pictures
    shutil.move(str(work / "coco"), str(tmp_path / "moved"))
    capsys.readouterr()
    assert main(["report", str(work / "run")]) == 0
    err = capsys.readouterr().err
    assert "was not found" in err and f"mmdiag report {work / 'run'} --data coco:PATH" in err
    assert (work / "run" / "report.html").read_text().count("data:image/png") < pictures
    assert main(["report", str(work / "run"), "--data", f"coco:{tmp_path / 'moved'}"]) == 0
    assert (work / "run" / "report.html").read_text().count("data:image/png") == pictures


def test_report_md_neutralises_links_other_than_http_and_relative(tmp_path, finished_run):
    from mmdiag.report.markdown import _cell

    assert _cell("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert _cell("[x]: data:text/html,hi") == "\\[x\\]: data:text/html,hi"
    assert _cell("[y]( VBScript:run)") == "\\[y\\]( VBScript:run)"
    for safe in ("[doc](https://example.org/a)", "[r](report.html#gates)", "[x] alone"):
        assert _cell(safe) == safe
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    results = json.loads((run / "results.json").read_text())
    results["notes"].append("click [here](javascript:alert(document.cookie)) or [there](file:///etc/passwd)")
    (run / "results.json").write_text(json.dumps(results))
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "](javascript:" not in text.replace("\\](javascript:", "") and "\\[there\\](file:" in text
