"""``load_adapter``: from a path, hub id, open_clip spec, or pre-built objects to a checked adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from mmdiag.adapters.base import Adapter
from mmdiag.adapters.hf_loading import LoadOptions, refuse_remote_code
from mmdiag.adapters.open_clip import CONFIG_FILE as OPEN_CLIP_CONFIG
from mmdiag.adapters.open_clip import SPEC_PREFIX as OPEN_CLIP_PREFIX
from mmdiag.adapters.registry import AdapterRegistry, default_registry
from mmdiag.errors import ModelLoadError, UnsupportedArchitectureError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_TEXT_ONLY_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForSequenceClassification", "ForSeq2SeqLM")


def load_adapter(
    model: str | Path | torch.nn.Module | Adapter,
    processor: Any = None,
    *,
    options: LoadOptions | None = None,
    registry: AdapterRegistry | None = None,
    validate: bool = True,
    **adapter_kwargs: Any,
) -> Adapter:
    """Wrap a VLM in the adapter of its family.

    ``model`` is a local folder, a hub id (``org/name``, fetched by ``from_pretrained``), an open_clip
    spec (``open_clip:ViT-B-32``), an already-built model (then pass its ``processor``), or an adapter
    (returned as is). Raises :class:`~mmdiag.errors.ModelLoadError` with a one-line message.
    """
    if isinstance(model, Adapter):
        return model
    registry = registry or default_registry()
    options = options or LoadOptions()
    if isinstance(model, torch.nn.Module):
        adapter = _wrap_built(model, processor, registry, adapter_kwargs)
    else:
        adapter = _load_from_spec(str(model), options, registry, adapter_kwargs)
    if validate:
        adapter.validate()
    return adapter


def preflight_model(spec: str, options: LoadOptions | None = None, registry: AdapterRegistry | None = None) -> None:
    """The cheap checks of :func:`load_adapter` for a local folder (path, config, weights format, architecture),
    without loading weights: run before spawning processes, so a bad path is one line, not one per process."""
    options = options or LoadOptions()
    if spec.startswith(OPEN_CLIP_PREFIX):
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / OPEN_CLIP_CONFIG).is_file():
            return
        architectures = _read_architectures(path)
        _check_weights(path, options.allow_pickle)
        _lookup(
            architectures, registry or default_registry(), source=str(path), trust_remote_code=options.trust_remote_code
        )
    elif path.exists():
        raise ModelLoadError(f"{spec} is a file, not a model folder: pass the folder that holds config.json")
    elif not (_HUB_ID.match(spec) and not spec.startswith((".", "~"))):
        raise ModelLoadError(f"model path {spec} does not exist: check the path, or pass a hub id like org/name")


def _wrap_built(model: torch.nn.Module, processor: Any, registry: AdapterRegistry, kwargs: dict[str, Any]) -> Adapter:
    if processor is None:
        raise ModelLoadError("a pre-built model needs its processor too: load_adapter(model, processor)")
    names = list(getattr(getattr(model, "config", None), "architectures", None) or []) + [type(model).__name__]
    if type(model).__module__.startswith("open_clip"):
        names.append("open_clip")
    adapter_cls = _lookup(names, registry, source=type(model).__name__)
    return adapter_cls.wrap(model, processor, **kwargs)


def _load_from_spec(spec: str, options: LoadOptions, registry: AdapterRegistry, kwargs: dict[str, Any]) -> Adapter:
    if spec.startswith(OPEN_CLIP_PREFIX):
        return registry.get("open_clip").from_pretrained(spec, options)
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / OPEN_CLIP_CONFIG).is_file():
            return registry.get("open_clip").from_pretrained(str(path), options)
        architectures = _read_architectures(path)
        _check_weights(path, options.allow_pickle)
        adapter_cls = _lookup(architectures, registry, source=str(path), trust_remote_code=options.trust_remote_code)
        return adapter_cls.from_pretrained(str(path), options, **kwargs)
    if path.exists():
        raise ModelLoadError(f"{spec} is a file, not a model folder: pass the folder that holds config.json")
    if _HUB_ID.match(spec) and not spec.startswith((".", "~")):
        return _load_from_hub(spec, options, registry, kwargs)
    raise ModelLoadError(f"model path {spec} does not exist: check the path, or pass a hub id like org/name")


def _load_from_hub(repo_id: str, options: LoadOptions, registry: AdapterRegistry, kwargs: dict[str, Any]) -> Adapter:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(repo_id, trust_remote_code=options.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not fetch '{repo_id}' from the Hugging Face hub ({err.__class__.__name__}; offline or unknown "
            "id?): download it to a local folder and pass that path"
        ) from err
    adapter_cls = _lookup(list(config.architectures or []), registry, source=repo_id)
    return adapter_cls.from_pretrained(repo_id, options, **kwargs)


def _read_architectures(path: Path) -> list[str]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(
            f"{path} has no config.json: not a saved transformers model (save it with model.save_pretrained, "
            f"or for open_clip put {OPEN_CLIP_CONFIG} there)"
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{config_file} is not valid JSON ({err}): re-save the model") from err
    architectures = config.get("architectures") or []
    if not architectures:
        raise UnsupportedArchitectureError(
            f"{config_file} names no architectures (model_type={config.get('model_type')!r}): "
            "re-save the model with save_pretrained so config.architectures is set"
        )
    return list(architectures)


def _check_weights(path: Path, allow_pickle: bool) -> None:
    files = [p.name for p in path.iterdir() if p.is_file()]
    if any(name.endswith(".safetensors") or name.endswith(".safetensors.index.json") for name in files):
        return
    pickles = sorted(name for name in files if name.endswith(_PICKLE_SUFFIXES) or name.endswith(".bin.index.json"))
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"{path} has only pickle weights ({pickles[0]}), which can run code when loaded: convert them to "
            "safetensors (model.save_pretrained) or pass --allow-pickle if you trust the files"
        )
    if not pickles:
        raise ModelLoadError(f"{path} has a config but no weights (*.safetensors): copy the weight files there")


def check_transformers(architecture: str) -> None:
    """A one-line error when the installed transformers is older than the family declaring ``architecture`` needs
    (its ``min_transformers``)."""
    from mmdiag.families import family_of_architecture

    family = family_of_architecture(architecture)
    needed = family.min_transformers if family is not None else None
    if not needed:
        return
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__) < Version(needed):
        raise UnsupportedArchitectureError(
            f"{architecture} needs transformers >= {needed}, and {transformers.__version__} is installed: "
            f"pip install 'transformers>={needed}'"
        )


def _lookup(architectures: list[str], registry: AdapterRegistry, source: str, trust_remote_code: bool = False) -> type:
    for name in architectures:
        if name in registry:
            adapter_cls = registry.get(name)
            check_transformers(name)
            return adapter_cls
    if not trust_remote_code and Path(source).is_dir():
        refuse_remote_code(source)  # a checkpoint that needs its own code: the refusal names the opt-in
    supported = ", ".join(registry.supported())
    shown = ", ".join(architectures) or "none"
    if architectures and all(name.endswith(_TEXT_ONLY_SUFFIXES) for name in architectures):
        raise UnsupportedArchitectureError(
            f"{source} is a text-only model ({shown}); mmdiag audits vision-language models: {supported}"
        )
    raise UnsupportedArchitectureError(
        f"unsupported architecture {shown} in {source}; supported: {supported} "
        "(add one through the 'mmdiag.adapters' entry point)"
    )
