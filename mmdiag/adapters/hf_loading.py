"""Loading an HF transformers model + processor with mmdiag's safety defaults and one-line errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmdiag.errors import ModelLoadError
from mmdiag.validation import parse_bool


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint.

    ``allow_pickle`` permits ``.bin``/``.pt`` weights (pickle can run code: off by default);
    ``trust_remote_code`` is passed to transformers (off by default); ``device_map`` and ``dtype``
    go to ``from_pretrained`` (accelerate's big-model inference); ``max_memory`` and
    ``offload_folder`` likewise; ``extra`` holds further ``from_pretrained`` arguments (``revision``,
    ``attn_implementation``...).
    """

    device_map: Any = None
    dtype: Any = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    max_memory: dict[Any, str] | None = None
    offload_folder: str | None = None
    checkpoint: str | None = None  # open_clip: a weights file for a named architecture
    gpus_per_process: int = 0  # data-parallel + sharding: each process shards over its own group of GPUs
    extra: tuple[tuple[str, Any], ...] = ()  # further from_pretrained arguments (--model-args revision=..., ...)

    def __post_init__(self) -> None:
        # the two options that let a checkpoint run code are booleans, parsed strictly: "no", "off", "false" and
        # 0 mean no; anything that is not a boolean word is refused (Python truthiness would opt in)
        for name in ("allow_pickle", "trust_remote_code"):
            object.__setattr__(self, name, parse_bool(getattr(self, name), name))

    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "use_safetensors": None if self.allow_pickle else True,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        if self.dtype is not None:
            kwargs["dtype"] = resolve_dtype(self.dtype)
        if self.max_memory is not None:
            kwargs["max_memory"] = self.max_memory
        if self.offload_folder is not None:
            kwargs["offload_folder"] = self.offload_folder
        kwargs.update(dict(self.extra))
        return kwargs


def resolve_dtype(dtype: Any) -> Any:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16``... to a torch dtype; ``"auto"`` passes through."""
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    names = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}
    name = names.get(str(dtype), str(dtype))
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype '{dtype}': use one of float32, float16, bfloat16, auto")
    return value


def load_hf_model(model_cls: Any, path: str, options: LoadOptions) -> torch.nn.Module:
    """``model_cls.from_pretrained(path)`` with the options; errors become one-line ModelLoadErrors."""
    try:
        return model_cls.from_pretrained(path, **options.model_kwargs())
    except torch.OutOfMemoryError as err:
        raise ModelLoadError(
            f"out of memory while loading {path}: pass --device-map auto (and --max-memory) to shard it, "
            f"or --dtype bfloat16 ({err.__class__.__name__})"
        ) from err
    except (OSError, ValueError, RuntimeError, safetensors_error()) as err:
        if not options.trust_remote_code:
            refuse_remote_code(path)
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise ModelLoadError(
            f"could not load the model weights from {path} ({err.__class__.__name__}: {first}): "
            "the files may be truncated or corrupt; re-save or re-download them"
        ) from err


def safetensors_error() -> type[BaseException]:
    """safetensors' own error type (a truncated or corrupt file), which is not an OSError."""
    try:
        from safetensors import SafetensorError
    except ImportError:
        return OSError
    return SafetensorError


def load_hf_processor(
    path: str, options: LoadOptions, required: tuple[str, ...] = ("image_processor", "tokenizer")
) -> Any:
    """``AutoProcessor.from_pretrained(path)``, checking it has every part the family needs."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=options.trust_remote_code)
    except ImportError as err:  # a processor that needs an optional package (SmolVLM's num2words)
        package = missing_package(err)
        raise ModelLoadError(
            f"the processor in {path} needs the Python package {package}, which is not installed: pip install {package}"
        ) from err
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        if not options.trust_remote_code:
            refuse_remote_code(path)
        raise ModelLoadError(
            f"missing or unreadable processor files in {path} ({err.__class__.__name__}): save the model's "
            f"processor next to it with processor.save_pretrained('{path}')"
        ) from err
    missing = [part for part in required if getattr(processor, part, None) is None]
    if missing:
        raise ModelLoadError(
            f"the processor in {path} has no {' or '.join(missing)} (it loaded as {type(processor).__name__}): "
            f"save the full processor with processor.save_pretrained('{path}')"
        )
    return processor


def missing_package(err: ImportError) -> str:
    """The package an ImportError asks for: its ``name``, else the first backquoted or quoted word of its message
    (transformers: "Package `num2words` is required ..."), else the message itself."""
    import re

    if getattr(err, "name", None):
        return str(err.name).split(".")[0]
    found = re.search(r"[`'\"]([A-Za-z0-9_.\-]+)[`'\"]", str(err))
    return found.group(1) if found else str(err).splitlines()[0]


REMOTE_CODE_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


def needs_remote_code(path: str) -> str | None:
    """The file of a local checkpoint folder that asks for the checkpoint's own Python code (an ``auto_map``
    entry), else None."""
    import json
    from pathlib import Path

    folder = Path(path)
    for name in REMOTE_CODE_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # the loader reports an unreadable file itself
        if isinstance(data, dict) and data.get("auto_map"):
            return name
    return None


def refuse_remote_code(path: str) -> None:
    """Called where loading without remote code failed (or no adapter serves the architecture): when the
    checkpoint's files map its classes to its own Python code, the refusal names the opt-in, since that code would
    run on this machine (``--trust-remote-code``). Checkpoints that name such code but load with transformers' own
    classes are not refused."""
    found = needs_remote_code(path)
    if found:
        raise ModelLoadError(
            f"{path} needs its own Python code ('auto_map' in {found}), which mmdiag does not run "
            "unless asked: pass --trust-remote-code (or --model-args trust_remote_code=true) if "
            "you trust the files"
        )
