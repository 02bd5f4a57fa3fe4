"""The bad-input suite: every careless or hostile input is one line on stderr, exit 2, and costs no finished work.

Each case runs the real CLI in-process next to a copy of a finished run folder. The assertions are the same for
all: exit code 2, exactly one non-empty line on stderr starting ``mmdiag: error:`` and naming the problem, no
traceback, and every file of the run folder unchanged byte for byte (most audit cases point ``--out`` at that
folder with ``--overwrite``, the worst case: a refusal must come before anything is removed).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import QUICK, check_one_line_refusal

# an audit that would replace the finished run if the input were good: every refusal must come first
ON_RUN = "audit --out {run} --overwrite --no-progress --suite {quick} --model {clip}"
QUESTION = {"question_id": 1, "text": "Is there a red circle in the image?", "label": "yes"}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _model_copy(src: Path, dst: Path, edit: Callable[[Path], None] | None = None, skip: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    if edit:
        edit(dst)
    return dst


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)


def _architecture(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = [name]
        (folder / "config.json").write_text(json.dumps(config))

    return edit


def _pickled(folder: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _text_only(folder: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(folder)
    return folder


def _suite(tmp: Path, edit: Callable[[dict], None]) -> Path:
    import yaml

    data = yaml.safe_load(Path(QUICK).read_text())
    edit(data)
    return _write(tmp / "suite.yaml", yaml.safe_dump(data))


def _pope(tmp: Path, image: str) -> Path:
    (tmp / "images").mkdir(exist_ok=True)
    return _write(tmp / "questions.jsonl", json.dumps({**QUESTION, "image": image}) + "\n")


def _symlink_out(tmp: Path) -> Path:
    (tmp / "images").mkdir(exist_ok=True)
    outside = _write(tmp / "outside" / "secret.png", "not for you")
    (tmp / "images" / "link").symlink_to(outside.parent, target_is_directory=True)
    return _pope(tmp, "link/secret.png")


def _live_lock(run: Path) -> None:
    (run / ".mmdiag.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


# id -> (command template, setup(tmp, run, tiny) returning extra placeholders, words the one line must hold)
Setup = Callable[[Path, Path, dict], dict]
NONE: Setup = lambda tmp, run, tiny: {}  # noqa: E731

CASES: dict[str, tuple[str, Setup, tuple[str, ...]]] = {
    # the model
    "model-missing": (ON_RUN + " --model {tmp}/nope", NONE, ("does not exist", "check the path")),
    "model-is-a-file": (ON_RUN + " --model {x}", lambda t, r, m: {"x": _write(t / "f.txt", "x")}, ("is a file",)),
    "model-no-config": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _write(t / "e" / "README", "").parent},
        ("no config.json",),
    ),
    "model-no-weights": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _model_copy(m["llava"], t / "m", skip=("model.safetensors",))},
        ("no weights",),
    ),
    "model-truncated-weights": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _model_copy(m["llava"], t / "m", _truncate)},
        ("SafetensorError", "truncated or corrupt"),
    ),
    "model-corrupt-config": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _model_copy(m["llava"], t / "m", lambda f: _write(f / "config.json", "{not json"))},
        ("config.json is not valid JSON",),
    ),
    "model-unsupported-architecture": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _model_copy(m["llava"], t / "m", _architecture("WeirdVLM"))},
        ("unsupported architecture WeirdVLM", "entry point"),
    ),
    "model-text-only": (ON_RUN + " --model {x}", lambda t, r, m: {"x": _text_only(t / "llm")}, ("text-only",)),
    "model-pickle-weights": (
        ON_RUN + " --model {x}",
        lambda t, r, m: {"x": _model_copy(m["llava"], t / "m", _pickled)},
        ("pickle", "--allow-pickle"),
    ),
    "model-hub-id-offline": (ON_RUN + " --model org-that-does-not-exist/model-x", NONE, ("local folder",)),
    "dtype-unknown": (ON_RUN + " --dtype bogus", NONE, ("unknown dtype 'bogus'",)),
    "device-map-bad-json": (ON_RUN + " --device-map {{bad", NONE, ("--device-map is not valid JSON",)),
    "max-memory-bad-json": (ON_RUN + " --max-memory {{bad", NONE, ("--max-memory is not valid JSON",)),
    # bounds and types of flags
    "resolution-zero": (ON_RUN + " --resolution 0", NONE, ("--resolution must be from 16",)),
    "resolution-negative": (ON_RUN + " --resolution -8", NONE, ("--resolution must be from 16",)),
    "n-scenes-zero": (ON_RUN + " --n-examples 0", NONE, ("--n-examples must be from 1",)),
    "n-scenes-huge": (ON_RUN + " --n-examples 1000000000", NONE, ("--n-examples must be from 1 to 100000",)),
    "n-scenes-not-a-number": (ON_RUN + " --n-scenes abc", NONE, ("--n-scenes: invalid int value",)),
    "seed-negative": (ON_RUN + " --seed -1", NONE, ("--seed must be from 0",)),
    "batch-size-zero": (ON_RUN + " --batch-size 0", NONE, ("--batch-size must be from 1",)),
    "num-processes-zero": (ON_RUN + " --num-processes 0", NONE, ("--num-processes must be at least 1",)),
    "gpus-per-process-negative": (ON_RUN + " --gpus-per-process -1", NONE, ("--gpus-per-process",)),
    "unknown-flag": (ON_RUN + " --telepathy", NONE, ("unrecognized arguments: --telepathy",)),
    # gates, probes, defects
    "gate-two-dots": (ON_RUN + " --gate hallucination.f1>=1.2.3", NONE, ("cannot read gate", "probe.metric>=number")),
    "gate-lone-dot": (ON_RUN + " --gate hallucination.f1>=.", NONE, ("cannot read gate",)),
    "gate-prose": (ON_RUN + " --gate f1-is-big", NONE, ("probe.metric>=number",)),
    "gate-unknown-metric": (ON_RUN + " --gate hallucination.nonsense>=1", NONE, ("unknown metric",)),
    "probe-unknown": (ON_RUN + " --probes telepathy", NONE, ("unknown probe 'telepathy'",)),
    "probe-none": (ON_RUN + " --probes ,", NONE, ("no probes to run",)),
    "probe-twice": (ON_RUN + " --probes attention,attention", NONE, ("named twice",)),
    "plant-unknown": (ON_RUN + " --plant gremlin", NONE, ("unknown defect 'gremlin'", "image-blind")),
    # suites
    "suite-missing": (ON_RUN + " --suite {tmp}/nope.yaml", NONE, ("does not exist",)),
    "suite-not-yaml": (
        ON_RUN + " --suite {x}",
        lambda t, r, m: {"x": _write(t / "s.yaml", "probes: [unclosed\n")},
        ("not valid YAML",),
    ),
    "suite-not-a-mapping": (
        ON_RUN + " --suite {x}",
        lambda t, r, m: {"x": _write(t / "s.yaml", "- a\n- b\n")},
        ("must be a mapping",),
    ),
    "suite-zero-scenes": (
        ON_RUN + " --suite {x}",
        lambda t, r, m: {"x": _suite(t, lambda d: d["scenes"].update(n=0))},
        ("'scenes.n' must be from 1",),
    ),
    "suite-mistyped-parameter": (
        ON_RUN + " --suite {x}",
        lambda t, r, m: {"x": _suite(t, lambda d: d["probes"]["attention"].update(untrained_baseline="nope"))},
        ("'untrained_baseline' must be true or false",),
    ),
    "suite-unknown-key": (
        ON_RUN + " --suite {x}",
        lambda t, r, m: {"x": _suite(t, lambda d: d.update(sceens={}))},
        ("unknown key 'sceens'",),
    ),
    # the run folder
    "out-is-a-file": (
        "audit --out {x} --no-progress --suite {quick} --model {clip}",
        lambda t, r, m: {"x": _write(t / "f.txt", "x")},
        ("is a file",),
    ),
    "out-holds-a-run": (
        "audit --out {run} --no-progress --suite {quick} --model {clip}",
        NONE,
        ("already holds a run", "--resume", "--overwrite"),
    ),
    "out-overwrite-and-resume": (ON_RUN + " --resume", NONE, ("contradict",)),
    "out-live-writer": (ON_RUN, lambda t, r, m: _live_lock(r) or {}, ("being written by another mmdiag run",)),
    "out-not-writable": (
        "audit --out /sys/mmdiag-run --no-progress --suite {quick} --model {clip}",
        NONE,
        ("could not write /sys/mmdiag-run",),
    ),
    "resume-other-model": (
        "audit --out {run} --resume --no-progress --suite {quick} --model {llava}",
        NONE,
        ("--resume refused", "model config"),
    ),
    "resume-other-seed": (
        "audit --out {run} --resume --no-progress --suite {quick} --model {clip} --seed 5",
        NONE,
        ("--resume refused", "suite/configuration"),
    ),
    "resume-other-resolution": (
        "audit --out {run} --resume --no-progress --suite {quick} --model {clip} --resolution 32",
        NONE,
        ("--resume refused", "suite/configuration"),
    ),
    "resume-planted-defect": (
        "audit --out {run} --resume --no-progress --suite {quick} --model {clip} --plant image-blind",
        NONE,
        ("--resume refused", "planted defect"),
    ),
    "resume-retrained-weights": (
        "audit --out {run} --resume --no-progress --suite {quick} --model {x}",
        lambda t, r, m: {"x": _retrained(m["clip"], t / "m")},
        ("--resume refused", "weights"),
    ),
    # report and compare
    "report-missing": ("report {tmp}/nowhere", NONE, ("does not exist",)),
    "report-not-json": (
        "report {x}",
        lambda t, r, m: {"x": _write(t / "r" / "results.json", "{half").parent},
        ("not valid JSON",),
    ),
    "report-wrong-shape": (
        "report {x}",
        lambda t, r, m: {"x": _write(t / "r" / "results.json", '{"probes": []}').parent},
        ("does not follow the results schema",),
    ),
    "compare-out-is-a-file": (
        "compare {run} {run} --out {x}",
        lambda t, r, m: {"x": _write(t / "f.txt", "x")},
        ("is a file",),
    ),
    "compare-missing-run": ("compare {run} {tmp}/nowhere --out {tmp}/c", NONE, ("does not exist",)),
    # POPE files
    "pope-questions-missing": ("pope --questions {tmp}/q.jsonl --answers {tmp}/a.jsonl", NONE, ("does not exist",)),
    "pope-rule-unknown": (
        "pope --questions {x} --answers {x} --rule fuzzy",
        lambda t, r, m: {"x": _pope(t, "a.png")},
        ("unknown parsing rule 'fuzzy'",),
    ),
    "pope-line-not-json": (
        "pope --questions {x} --answers {x}",
        lambda t, r, m: {"x": _write(t / "q.jsonl", "{broken\n")},
        ("is not JSON",),
    ),
    "pope-image-dot-dot": (
        "pope --questions {x} --model {clip} --image-dir {tmp}/images",
        lambda t, r, m: {"x": _pope(t, "../../etc/passwd")},
        ("resolves outside the image folder",),
    ),
    "pope-image-absolute": (
        "pope --questions {x} --model {clip} --image-dir {tmp}/images",
        lambda t, r, m: {"x": _pope(t, "/etc/hostname")},
        ("resolves outside the image folder",),
    ),
    "pope-image-symlink-out": (
        "pope --questions {x} --model {clip} --image-dir {tmp}/images",
        lambda t, r, m: {"x": _symlink_out(t)},
        ("resolves outside the image folder",),
    ),
    "pope-out-not-writable": (
        "pope --questions {x} --answers {a} --out /sys/pope.json",
        lambda t, r, m: {"x": _pope(t, "a.png"), "a": _write(t / "a.jsonl", '{"question_id": 1, "answer": "Yes"}\n')},
        ("could not write /sys/pope.json",),
    ),
    # scenes and tiny
    "scenes-zero": ("scenes --n 0 --out {tmp}/s", NONE, ("--n must be from 1",)),
    "scenes-resolution-zero": ("scenes --n 2 --resolution 0 --out {tmp}/s", NONE, ("--resolution must be from 16",)),
    "scenes-cooccur-malformed": ("scenes --n 2 --cooccur a,b --out {tmp}/s", NONE, ("ANCHOR,PARTNER,P",)),
    "tiny-out-not-writable": ("tiny llava --out /sys/mmdiag-tiny", NONE, ("could not write /sys/mmdiag-tiny",)),
}


def _retrained(src: Path, dst: Path) -> Path:
    """The same architecture and config with one weight changed: what a fine-tune looks like from outside."""
    from safetensors.torch import load_file, save_file

    _model_copy(src, dst)
    tensors = load_file(dst / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_keeps_the_run(case, tmp_path, tiny_paths, finished_run, capsys):
    check_one_line_refusal(CASES[case], tmp_path, finished_run, tiny_paths, capsys)
