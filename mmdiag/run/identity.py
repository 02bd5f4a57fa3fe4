"""A run's identity: what its records were measured with, so that ``--resume`` never mixes two runs.

``run-identity.json`` is written when a run starts. A resume recomputes the identity of the model it loaded
and refuses, in one line naming what differs, unless every field matches: the mmdiag version, the model's
config hash, a fingerprint of its weights (strided samples of every tensor, after any planted defect),
the weights' dtype, the planted defect, the hash of the measuring configuration (probes and their
parameters, scenes, seed, resolution, batch size, prompting; gates are left out since they only judge), the
content of every data file the source reads (annotations, captions, question and relation files: sha256 of the
whole file) with the list of its images (names, sizes and a hash of each file's first and last bytes), and the
model folder's small files (config, tokenizer, processor, chat template). A resume refuses, naming the file,
when any of them changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from mmdiag.errors import MmdiagError, write_error
from mmdiag.results import EXAMPLES_FILE
from mmdiag.run.store import IDENTITY_FILE

SAMPLES_PER_TENSOR = 64

FIELD_NAMES = {
    "mmdiag": "mmdiag version",
    "model_config_hash": "model config",
    "weights": "model weights (or their placement)",
    "dtype": "weights dtype",
    "planted_defect": "planted defect",
    "config_hash": "suite/configuration (probes, parameters, scenes, seed, resolution, batch size)",
    "inputs": "data",
    "model_files": "model files",
}
PER_FILE_FIELDS = ("inputs", "model_files")  # {name: hash}: a refusal names the file that changed
IMAGE_END_BYTES = 8192  # of each image file, from each end, hashed with its size (cheap for 5,000 photos)
MODEL_FILE_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken", ".py")  # not the weights: fingerprinted


def file_sha256(path: Path) -> str:
    """sha256 of the whole file (16 hex digits), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def image_list_hash(paths: Iterable[Path]) -> str:
    """One hash over the image files (sorted by name): each one's name, size and first and last
    :data:`IMAGE_END_BYTES` bytes; an absent file counts as absent."""
    digest = hashlib.sha256()
    for path in sorted({str(p) for p in paths}):
        file = Path(path)
        digest.update(path.encode() + b"\0")
        if not file.is_file():
            digest.update(b"absent\0")
            continue
        size = file.stat().st_size
        digest.update(f"{size}\0".encode())
        with file.open("rb") as f:
            digest.update(f.read(IMAGE_END_BYTES))
            if size > IMAGE_END_BYTES:
                f.seek(max(IMAGE_END_BYTES, size - IMAGE_END_BYTES))
                digest.update(f.read())
    return digest.hexdigest()[:16]


def data_fingerprint(source: Any) -> dict[str, str]:
    """``{"data file PATH": sha256, "images of DATA": hash}`` for a data source (empty for rendered scenes)."""
    out = {f"data file {path}": file_sha256(path) for path in source.input_files()}
    images = source.image_files()
    if images:
        out[f"image list of the {source.name} data"] = image_list_hash(images)
    return out


def model_files_fingerprint(model: Any) -> dict[str, str]:
    """``{file name: sha256}`` of a local model folder's small files (config, tokenizer, processor, chat
    template); the weights are fingerprinted from the loaded tensors instead. Empty for a model built in memory
    or a hub id."""
    if not isinstance(model, (str, Path)) or not Path(model).is_dir():
        return {}
    return {
        f"model file {p.name}": file_sha256(p)
        for p in sorted(Path(model).iterdir())
        if p.is_file() and p.name.endswith(MODEL_FILE_SUFFIXES)
    }


def weights_fingerprint(model: torch.nn.Module, samples: int = SAMPLES_PER_TENSOR) -> str:
    """sha256 over every tensor's name, shape, dtype and ``samples`` strided values (16 hex digits).

    Cheap at any size (a few values per tensor) yet different for any retrained or fine-tuned checkpoint.
    Tensors on the meta device (offloaded by accelerate) contribute their name and shape only.
    """
    digest = hashlib.sha256()
    tensors = sorted([*model.named_parameters(), *model.named_buffers()], key=lambda item: item[0])
    for name, tensor in tensors:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        flat = tensor.detach().reshape(-1)
        if flat.is_complex():  # Llama 4's rotary buffer: both parts count
            flat = torch.view_as_real(flat).reshape(-1)
        step = max(1, flat.numel() // samples)
        values = flat[::step][:samples].to(device="cpu", dtype=torch.float64)
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:16]


def check_or_write(run_dir: Path, identity: dict[str, Any], resume: bool) -> None:
    """On resume, refuse unless ``run_dir``'s stored identity equals ``identity``; then (re)write it."""
    path = Path(run_dir) / IDENTITY_FILE
    has_records = (Path(run_dir) / EXAMPLES_FILE).is_file()
    if resume and path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise MmdiagError(
                f"{path} is unreadable ({err.__class__.__name__}): the run cannot be proven the same; "
                "pass --overwrite to start again"
            ) from err
        for key, label in FIELD_NAMES.items():
            if key in PER_FILE_FIELDS:
                continue
            if stored.get(key) != identity.get(key):
                raise MmdiagError(
                    f"--resume refused: {run_dir} was measured with another {label} ({stored.get(key)!r} there, "
                    f"{identity.get(key)!r} now): resume with the same model and options, or pass --overwrite "
                    "or another --out"
                )
        for key in PER_FILE_FIELDS:
            before, now = stored.get(key) or {}, identity.get(key) or {}
            changed = [name for name in sorted({*before, *now}) if before.get(name) != now.get(name)]
            if changed:
                name = changed[0]
                what = "is new" if name not in before else ("is gone" if name not in now else "changed")
                raise MmdiagError(
                    f"--resume refused: {name} {what} since {run_dir} was measured ({before.get(name)!r} there, "
                    f"{now.get(name)!r} now{f'; {len(changed) - 1} more' if len(changed) > 1 else ''}): resume "
                    "only on the same inputs, or pass --overwrite or another --out"
                )
        return
    if resume and has_records:
        raise MmdiagError(
            f"--resume refused: {run_dir} has examples but no {IDENTITY_FILE}, so they cannot be proven "
            "to come from this model and configuration: pass --overwrite to start again"
        )
    try:
        path.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        raise write_error(path, err, "pass a writable --out folder") from err
