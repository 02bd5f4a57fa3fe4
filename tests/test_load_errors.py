"""Each bad-input case gives a one-line message naming the problem and the fix, and exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import integrity_suite

from mmdiag.cli import main


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("mmdiag: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def copy_model(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in skip:
            shutil.copy(f, dst / f.name)
    return dst


def audit(capsys: pytest.CaptureFixture, model: str, out: Path, *extra: str) -> tuple[int, str]:
    return run_cli(capsys, "audit", "--model", model, "--out", str(out), "--n-examples", "2", "--no-progress", *extra)


def test_missing_path(capsys, tmp_path):
    code, err = audit(capsys, str(tmp_path / "nope"), tmp_path / "run")
    assert_one_line_error(code, err, "does not exist", "check the path")


def test_hub_id_offline(capsys, tmp_path):
    code, err = audit(capsys, "org-that-does-not-exist/model-x", tmp_path / "run")
    assert_one_line_error(code, err, "org-that-does-not-exist/model-x", "local folder")


def test_text_only_model(capsys, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "llm"
    LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(folder)
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(code, err, "text-only", "LlamaForCausalLM", "LlavaForConditionalGeneration")


def test_unsupported_architecture_lists_the_supported_ones(capsys, tmp_path, tiny_paths):
    folder = copy_model(tiny_paths["llava"], tmp_path / "weird")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["WeirdVisionModelForConditionalGeneration"]
    (folder / "config.json").write_text(json.dumps(config))
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(
        code, err, "unsupported architecture", "WeirdVision", "Blip2ForConditionalGeneration", "mmdiag.adapters"
    )


def test_missing_processor_files(capsys, tmp_path, tiny_paths):
    folder = copy_model(
        tiny_paths["llava"],
        tmp_path / "noproc",
        skip=("processor_config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"),
    )
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(code, err, "processor", "save_pretrained")


def test_a_missing_optional_package_is_named_in_one_line(capsys, tmp_path, tiny_paths, monkeypatch):
    """SmolVLM's processor refuses to load without num2words: the error names the package and the install."""
    import transformers.models.smolvlm.processing_smolvlm as smolvlm

    monkeypatch.setattr(smolvlm, "num2words", None)
    code, err = audit(capsys, str(tiny_paths["smolvlm"]), tmp_path / "run")
    assert_one_line_error(
        code, err, "needs the Python package num2words, which is not installed: pip install num2words"
    )


def test_a_family_newer_than_the_installed_transformers_is_refused_in_one_line(
    capsys, tmp_path, tiny_paths, monkeypatch
):
    import dataclasses

    import mmdiag.families

    declared = mmdiag.families.family_of_architecture
    monkeypatch.setattr(
        mmdiag.families,
        "family_of_architecture",
        lambda arch: dataclasses.replace(declared(arch), min_transformers="99.0"),
    )
    code, err = audit(capsys, str(tiny_paths["llava"]), tmp_path / "run")
    assert_one_line_error(code, err, "LlavaForConditionalGeneration needs transformers >= 99.0", "pip install")


def test_pickle_only_weights_are_refused_unless_allowed(capsys, tmp_path, tiny_paths):
    from safetensors.torch import load_file

    folder = copy_model(tiny_paths["llava"], tmp_path / "pickled", skip=("model.safetensors",))
    torch.save(load_file(tiny_paths["llava"] / "model.safetensors"), folder / "pytorch_model.bin")
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(code, err, "pickle", "pytorch_model.bin", "--allow-pickle")
    code, _ = audit(
        capsys,
        str(folder),
        tmp_path / "run2",
        "--allow-pickle",
        "--probes",
        "hallucination",
        "--suite",
        integrity_suite(),
    )
    assert code == 0


def test_processor_model_mismatch(capsys, tmp_path, tiny_paths):
    """A processor whose patch size disagrees with the model expands <image> to the wrong count."""
    folder = copy_model(tiny_paths["llava"], tmp_path / "mismatch")
    proc = json.loads((folder / "processor_config.json").read_text())
    proc["patch_size"] = 4
    (folder / "processor_config.json").write_text(json.dumps(proc))
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(code, err, "processor", "64 tokens", "16 image features")


def test_config_without_weights(capsys, tmp_path, tiny_paths):
    folder = copy_model(tiny_paths["llava"], tmp_path / "noweights", skip=("model.safetensors",))
    code, err = audit(capsys, str(folder), tmp_path / "run")
    assert_one_line_error(code, err, "no weights")


def test_folder_without_config(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = audit(capsys, str(tmp_path / "empty"), tmp_path / "run")
    assert_one_line_error(code, err, "no config.json")


def test_bad_gate_and_unknown_probe(capsys, tmp_path, tiny_paths):
    code, err = audit(capsys, str(tiny_paths["llava"]), tmp_path / "run", "--gate", "f1 is big")
    assert_one_line_error(code, err, "probe.metric>=number")
    code, err = audit(capsys, str(tiny_paths["llava"]), tmp_path / "run2", "--gate", "hallucination.nonsense>=1")
    assert_one_line_error(code, err, "unknown metric", "hallucination.f1")
    code, err = audit(capsys, str(tiny_paths["llava"]), tmp_path / "run3", "--probes", "telepathy")
    assert_one_line_error(code, err, "unknown probe", "attention")


def test_existing_run_is_not_overwritten(capsys, tmp_path, tiny_paths):
    out = tmp_path / "run"
    assert (
        audit(capsys, str(tiny_paths["clip"]), out, "--probes", "hallucination", "--suite", integrity_suite())[0] == 0
    )
    before = (out / "examples.jsonl").read_text()
    code, err = audit(capsys, str(tiny_paths["clip"]), out, "--probes", "hallucination")
    assert_one_line_error(code, err, "already holds a run", "--overwrite")
    assert (out / "examples.jsonl").read_text() == before


def test_console_script_prints_no_traceback(tmp_path):
    """The real entry point, in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "mmdiag", "audit", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("mmdiag: error: model path")
