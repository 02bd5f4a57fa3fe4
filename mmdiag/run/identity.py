"""A run's identity: what its records were measured with, so that ``--resume`` never mixes two runs.

``run-identity.json`` is written when a run starts. A resume recomputes the identity of the model it loaded
and refuses, in one line naming what differs, unless every field matches: the mmdiag version, the model's
config hash, a fingerprint of its weights (strided samples of every tensor, after any planted defect),
the weights' dtype, the planted defect, and the hash of the measuring configuration (probes and their
parameters, scenes, seed, resolution, batch size; gates are left out since they only judge).
"""

from __future__ import annotations

import hashlib
import json
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
            raise MmdiagError(f"{path} is unreadable ({err.__class__.__name__}): the run cannot be proven the same; "
                              "pass --overwrite to start again") from err
        for key, label in FIELD_NAMES.items():
            if stored.get(key) != identity.get(key):
                raise MmdiagError(
                    f"--resume refused: {run_dir} was measured with another {label} ({stored.get(key)!r} there, "
                    f"{identity.get(key)!r} now): resume with the same model and options, or pass --overwrite "
                    "or another --out")
        return
    if resume and has_records:
        raise MmdiagError(f"--resume refused: {run_dir} has examples but no {IDENTITY_FILE}, so they cannot be proven "
                          "to come from this model and configuration: pass --overwrite to start again")
    try:
        path.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        raise write_error(path, err, "pass a writable --out folder") from err
