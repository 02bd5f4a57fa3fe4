"""Execution at scale on CPU: sharded models, two real processes, batch invariance, kill-and-resume,
the writer lock, and failures that are recorded and counted rather than hidden."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import QUICK, integrity_suite

from mmdiag.cli import main
from mmdiag.results import read_examples

TOLERANCE = 1e-5  # stated float tolerance for per-example values across batchings, processes and shards


def audit(model: Path, out: Path, *extra: str, n: int = 10) -> int:
    return main(
        [
            "audit",
            "--model",
            str(model),
            "--out",
            str(out),
            "--n-examples",
            str(n),
            "--no-progress",
            "--suite",
            integrity_suite(),
            *extra,
        ]
    )


def values_by_id(run: Path) -> dict[tuple[str, str], dict]:
    return {(r["probe"], r["example_id"]): r.get("values", {"error": r.get("error")}) for r in read_examples(run)}


def assert_close(a, b, path="") -> None:
    """Recursive equality with TOLERANCE on floats."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys differ"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and abs(a - b) <= TOLERANCE * max(1.0, abs(a)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def comparable(run: Path) -> dict:
    """results.json without what legitimately differs between runs (timestamps, command, processes)."""
    doc = json.loads((run / "results.json").read_text())
    for key in ("started_at", "finished_at", "command", "processes", "devices", "seconds_per_example"):
        doc["metadata"].pop(key)
    return doc


@pytest.mark.parametrize("family", ["llava", "blip2"])
def test_sharded_over_cpu_and_disk_equals_unsharded(tmp_path, tiny_paths, family):
    assert audit(tiny_paths[family], tmp_path / "plain") == 0
    assert (
        audit(
            tiny_paths[family],
            tmp_path / "sharded",
            "--device-map",
            "auto",
            "--max-memory",
            '{"cpu": "150KB"}',
            "--offload-dir",
            str(tmp_path / "offload"),
        )
        == 0
    )
    sharded = json.loads((tmp_path / "sharded" / "results.json").read_text())
    assert "disk" in sharded["metadata"]["devices"]  # some weights really lived on disk
    assert_close(values_by_id(tmp_path / "plain"), values_by_id(tmp_path / "sharded"))
    assert_close(comparable(tmp_path / "plain")["probes"], comparable(tmp_path / "sharded")["probes"])


@pytest.mark.parametrize("family", ["llava", "blip2", "clip"])
def test_batch_size_does_not_change_per_example_values(tmp_path, tiny_paths, family):
    assert (
        audit(tiny_paths[family], tmp_path / "b1", "--batch-size", "1", "--probes", "hallucination,spatial", n=12) == 0
    )
    assert (
        audit(tiny_paths[family], tmp_path / "b8", "--batch-size", "8", "--probes", "hallucination,spatial", n=12) == 0
    )
    assert_close(values_by_id(tmp_path / "b1"), values_by_id(tmp_path / "b8"))


def test_batching_across_scenes_keeps_the_quick_suites_metrics_and_decisions(tmp_path):
    """The default model on the quick suite, batch 1 vs batch 8 (scenes scored, answered and captioned together):
    every headline metric and CI bound to 1e-6, every yes/no decision, free-text answer and caption identical."""
    runs = {}
    for size in (1, 8):
        assert (
            main(
                [
                    "audit",
                    "--suite",
                    QUICK,
                    "--batch-size",
                    str(size),
                    "--out",
                    str(tmp_path / f"b{size}"),
                    "--no-progress",
                ]
            )
            == 0
        )
        runs[size] = json.loads((tmp_path / f"b{size}" / "results.json").read_text())["probes"]
    compared = 0
    for probe, result in runs[1].items():
        for name, metric in result["metrics"].items():
            other = runs[8][probe]["metrics"][name]
            for key in ("value", "ci_low", "ci_high", "p_value"):
                if metric[key] is None:
                    assert other[key] is None, f"{probe}.{name}.{key}"
                else:
                    assert abs(metric[key] - other[key]) <= 1e-6, f"{probe}.{name}.{key}: {metric[key]} != {other[key]}"
                    compared += 1
    assert compared > 50
    one, eight = values_by_id(tmp_path / "b1"), values_by_id(tmp_path / "b8")
    answers = [(k, v) for k, v in one.items() if k[0] == "hallucination"]
    assert answers
    for key, values in answers:
        batched = eight[key]
        for field in ("answers", "caption"):
            assert values[field] == batched[field], key
        says = np.array(values["p_yes"]) > np.array(values["p_no"])
        assert (says == (np.array(batched["p_yes"]) > np.array(batched["p_no"]))).all(), key
        for kind, blind in values["blind"].items():
            assert (np.array(blind["p_yes"]) > np.array(blind["p_no"])).tolist() == (
                np.array(batched["blind"][kind]["p_yes"]) > np.array(batched["blind"][kind]["p_no"])
            ).tolist()


def test_two_processes_equal_one(tmp_path, tiny_paths):
    """Two real processes (torchrun, gloo on CPU) write one report equal to a single process's."""
    model = tiny_paths["llava"]
    assert audit(model, tmp_path / "one") == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmdiag",
            "audit",
            "--model",
            str(model),
            "--out",
            str(tmp_path / "two"),
            "--n-examples",
            "10",
            "--no-progress",
            "--num-processes",
            "2",
            "--suite",
            integrity_suite(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["metadata"]["processes"] == 2
    assert not list((tmp_path / "two").glob("examples.rank*.jsonl"))  # shards merged into examples.jsonl
    assert_close(values_by_id(tmp_path / "one"), values_by_id(tmp_path / "two"))
    assert_close(comparable(tmp_path / "one"), comparable(tmp_path / "two"))


def test_killed_run_resumes_to_the_same_results(tmp_path, tiny_paths):
    model, n = tiny_paths["llava"], 40
    assert audit(model, tmp_path / "whole", "--batch-size", "1", n=n) == 0
    killed = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "mmdiag",
        "audit",
        "--model",
        str(model),
        "--out",
        str(killed),
        "--n-examples",
        str(n),
        "--no-progress",
        "--batch-size",
        "1",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    examples = killed / "examples.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not examples.exists() or len(examples.read_text().splitlines()) < 55):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(examples.read_text().splitlines())
    assert 55 <= done_before < 3 * n, "the run must be killed mid-way"
    assert (killed / ".mmdiag.lock").exists()  # left behind by the killed process: stale, must be taken over
    with examples.open("a") as f:
        f.write('{"probe": "spatial", "example_id": "torn')  # a record cut mid-write
    assert audit(model, killed, "--resume", "--batch-size", "1", n=n) == 0
    assert comparable(tmp_path / "whole") == comparable(killed)
    ids = [(r["probe"], r["example_id"]) for r in read_examples(killed)]
    assert len(ids) == len(set(ids)) == 3 * n  # nothing measured twice, nothing lost


def test_a_live_writer_locks_the_folder(tmp_path, tiny_paths, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".mmdiag.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert audit(tiny_paths["clip"], out) == 2
    assert "being written by another mmdiag run" in capsys.readouterr().err
    assert not (out / "examples.jsonl").exists()


class FlakyProbe:
    """Wraps the hallucination probe and fails on chosen scenes (a stand-in for a corrupt image)."""

    def __new__(cls, fail_every: int = 3, **params):  # noqa: ANN204
        from mmdiag.probes.hallucination import HallucinationProbe

        class Flaky(HallucinationProbe):
            name = "flaky"

            def check(self, example):  # noqa: ANN001, ANN202
                if int(example.example_id.split("-")[2][:5]) % fail_every == 0:
                    raise OSError(f"image file is truncated ({example.example_id})")

            def run_example(self, adapter, example):  # noqa: ANN001, ANN202
                self.check(example)
                return super().run_batch(adapter, [example])[0]

            def run_batch(self, adapter, examples):  # noqa: ANN001, ANN202
                for example in examples:  # one bad example fails its whole batch: the runner retries one by one
                    self.check(example)
                return super().run_batch(adapter, examples)

        return Flaky(**params)


def test_failed_examples_are_recorded_counted_and_reported(tmp_path, tiny_paths):
    from mmdiag import api
    from mmdiag.probes.registry import ProbeRegistry

    registry = ProbeRegistry()
    registry.register("flaky", lambda **params: FlakyProbe(**params))  # a factory: FlakyProbe is no Probe class
    outcome = api.audit(
        str(tiny_paths["llava"]),
        tmp_path / "run",
        api.AuditConfig(probes=("flaky",), n_examples=9),
        progress=False,
        registry=registry,
    )
    errors = [r for r in read_examples(tmp_path / "run") if "error" in r]
    assert len(errors) == 3 and all("image file is truncated" in r["error"] for r in errors)
    assert outcome.results["failed_examples"] == {"flaky": 3}
    assert outcome.results["probes"]["flaky"]["n_failed"] == 3
    assert outcome.results["probes"]["flaky"]["n_examples"] == 6  # scored only the good ones
    assert "3 example(s) failed" in (tmp_path / "run" / "report.html").read_text()
    every = api.audit(
        str(tiny_paths["llava"]),
        tmp_path / "all",
        api.AuditConfig(probes=("flaky",), n_examples=3),
        progress=False,
        registry=_registry_failing_all(),
    )
    assert every.results["verdict"] == "fail"
    assert "every example failed" in every.results["probes"]["flaky"]["error"]


def _registry_failing_all():
    from mmdiag.probes.registry import ProbeRegistry

    registry = ProbeRegistry()
    registry.register("flaky", lambda **params: FlakyProbe(fail_every=1, **params))
    return registry


def test_gpu_groups_confine_each_process(monkeypatch):
    """Sharding and data-parallel together: process r owns GPUs r*k..r*k+k-1 (logic checked without GPUs)."""
    import torch

    from mmdiag.run.distributed import gpu_group

    class Props:
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    budget = gpu_group(1, 2, memory="70GiB")
    assert budget == {0: "0MiB", 1: "0MiB", 2: "70GiB", 3: "70GiB", "cpu": "1000GiB"}
    from mmdiag.errors import ConfigError

    with pytest.raises(ConfigError, match="only 4 exist"):
        gpu_group(2, 2)
    assert np.isclose(int(gpu_group(0, 1)[0][:-3]), 80 * 1024 * 0.9, atol=1)
