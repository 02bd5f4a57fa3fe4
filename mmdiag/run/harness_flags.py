"""lm-evaluation-harness style options, parsed and checked: ``--model-args``, ``--gen-kwargs``, ``--limit``,
``--device``, ``--batch-size auto``. Each mistake is a one-line ConfigError naming the flag and what it takes."""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from mmdiag.errors import ConfigError
from mmdiag.validation import parse_bool

# --model-args keys: the loading options they set (LoadOptions fields) and extra from_pretrained arguments
MODEL_ARG_OPTIONS = {
    "dtype": "dtype",
    "device_map": "device_map",
    "trust_remote_code": "trust_remote_code",
    "allow_pickle": "allow_pickle",
    "offload_folder": "offload_folder",
    "max_memory": "max_memory",
}
MODEL_ARG_EXTRAS = ("revision", "attn_implementation", "low_cpu_mem_usage", "subfolder")
MODEL_ARG_ALIASES = {"pretrained": "model", "torch_dtype": "dtype", "parallelize": "device_map"}
# --model-args keys that are booleans, parsed strictly (``trust_remote_code=no`` is False, ``=maybe`` refused)
MODEL_ARG_BOOLEANS = ("trust_remote_code", "allow_pickle", "low_cpu_mem_usage")
# attn_implementation values transformers knows, and which need a package or an accelerator this machine may lack
ATTN_IMPLEMENTATIONS = (
    "eager",
    "sdpa",
    "flex_attention",
    "flash_attention_2",
    "flash_attention_3",
    "paged|sdpa",
    "paged|eager",
    "paged|flash_attention_2",
)
# --gen-kwargs keys (transformers GenerationConfig fields that make sense for free-text answers and captions)
GEN_KWARGS = {
    "max_new_tokens": int,
    "min_new_tokens": int,
    "num_beams": int,
    "do_sample": bool,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "repetition_penalty": float,
    "length_penalty": float,
    "no_repeat_ngram_size": int,
}
# --gen-kwargs ranges: (low, high, low inclusive); a value outside is refused before the model loads
MAX_NEW_TOKENS = 8192  # captions and free-text answers; a longer budget is a typo, not an audit
GEN_RANGES: dict[str, tuple[float, float, bool]] = {
    "max_new_tokens": (1, MAX_NEW_TOKENS, True),
    "min_new_tokens": (0, MAX_NEW_TOKENS, True),
    "num_beams": (1, 64, True),
    "temperature": (0.0, 100.0, False),
    "top_p": (0.0, 1.0, False),
    "top_k": (0, 1_000_000, True),
    "repetition_penalty": (0.0, 100.0, False),
    "length_penalty": (-100.0, 100.0, True),
    "no_repeat_ngram_size": (0, 64, True),
}
AUTO_BATCH_START = 64  # --batch-size auto tries this many examples per forward first, then halves on out-of-memory


def parse_key_values(text: str | None, flag: str) -> dict[str, Any]:
    """``"a=1,b=true,c=name"`` (lm-eval's form) or a JSON object, to a dict with numbers and booleans typed."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{flag} is not valid JSON ({err.msg}): write key=value,key=value or a JSON object"
            ) from err
        if not isinstance(value, dict):
            raise ConfigError(f"{flag} must be key=value pairs or a JSON object")
        return value
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag}: '{item}' is not key=value; write e.g. {flag} dtype=bfloat16,revision=main")
        out[key.strip()] = _typed(value.strip())
    return out


def _typed(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def split_model_args(args: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """``--model-args`` into (the model named by ``pretrained=``, LoadOptions fields, extra from_pretrained
    arguments). An unknown key is refused with the accepted ones."""
    model, options, extras = None, {}, {}
    for key, value in args.items():
        key = MODEL_ARG_ALIASES.get(key, key)
        if key == "model":
            model = str(value)
        elif key in MODEL_ARG_BOOLEANS:
            value = parse_bool(value, f"--model-args {key}")
            (options if key in MODEL_ARG_OPTIONS else extras)[MODEL_ARG_OPTIONS.get(key, key)] = value
        elif key in MODEL_ARG_OPTIONS:
            options[MODEL_ARG_OPTIONS[key]] = ("auto" if value is True else value) if key == "device_map" else value
        elif key == "attn_implementation":
            extras[key] = check_attn_implementation(value)
        elif key in MODEL_ARG_EXTRAS:
            extras[key] = value
        else:
            known = sorted([*MODEL_ARG_OPTIONS, *MODEL_ARG_EXTRAS, *MODEL_ARG_ALIASES])
            raise ConfigError(f"--model-args: unknown key '{key}' (accepted: {', '.join(known)})")
    return model, options, extras


def check_attn_implementation(value: Any) -> str:
    """``attn_implementation``: a name transformers knows, and for the flash kernels one this machine can run
    (a CUDA device and the flash-attn package), refused in one line before any weight is read."""
    if not isinstance(value, str) or value not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(
            f"--model-args attn_implementation={value!r} is not an attention implementation: use one of "
            + ", ".join(ATTN_IMPLEMENTATIONS[:5])
        )
    if "flash_attention" in value:
        import torch
        from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

        available = is_flash_attn_3_available() if value.endswith("_3") else is_flash_attn_2_available()
        if not torch.cuda.is_available() or not available:
            why = (
                "no CUDA device is visible"
                if not torch.cuda.is_available()
                else "the flash-attn package is not installed"
            )
            raise ConfigError(f"--model-args attn_implementation={value} cannot run here ({why}): use sdpa or eager")
    return value


def check_gen_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``--gen-kwargs`` checked against :data:`GEN_KWARGS` (names and types), :data:`GEN_RANGES` (finite values in
    range: ``num_beams=0``, ``top_p=5``, ``temperature=nan`` and ``max_new_tokens=1e9`` are refused) and
    transformers' own ``GenerationConfig.validate``, all before the model loads."""
    out = {}
    for key, value in kwargs.items():
        if key not in GEN_KWARGS:
            raise ConfigError(f"--gen-kwargs: unknown key '{key}' (accepted: {', '.join(sorted(GEN_KWARGS))})")
        kind = GEN_KWARGS[key]
        if kind is bool:
            out[key] = parse_bool(value, f"--gen-kwargs '{key}'")
            continue
        if kind is int and isinstance(value, float) and math.isfinite(value) and value == int(value):
            value = int(value)  # 1e3 written for 1000
        if (
            kind is int
            and (isinstance(value, bool) or not isinstance(value, int))
            or kind is float
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            raise ConfigError(
                f"--gen-kwargs: '{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}"
            )
        low, high, low_inclusive = GEN_RANGES[key]
        if not math.isfinite(value) or not (low <= value if low_inclusive else low < value) or value > high:
            bound = f"from {low:g}" if low_inclusive else f"above {low:g}"
            raise ConfigError(f"--gen-kwargs: '{key}' must be {bound} to {high:g}, got {value!r}")
        out[key] = float(value) if kind is float else value
    if out.get("min_new_tokens", 0) > out.get("max_new_tokens", MAX_NEW_TOKENS):
        raise ConfigError("--gen-kwargs: 'min_new_tokens' is above 'max_new_tokens': lower it")
    _validate_generation_config(out)
    return out


def _validate_generation_config(kwargs: dict[str, Any]) -> None:
    """transformers' own consistency checks of the generation options (its ValueErrors as one line)."""
    from transformers import GenerationConfig

    try:
        GenerationConfig(**kwargs).validate()
    except ValueError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "invalid"
        raise ConfigError(f"--gen-kwargs are inconsistent ({first}): fix them") from err


def limited_scenes(limit: str, n_scenes: int) -> int:
    """``--limit``: a count of scenes (``20``) or a fraction of the suite's (``0.25``), at least 1."""
    try:
        value = float(limit)
    except ValueError as err:
        raise ConfigError(f"--limit {limit!r} must be a count (e.g. 20) or a fraction below 1 (e.g. 0.25)") from err
    if not math.isfinite(value):
        raise ConfigError(f"--limit {limit!r} must be a finite count (e.g. 20) or a fraction below 1 (e.g. 0.25)")
    if value <= 0:
        raise ConfigError(f"--limit must be above 0, got {limit}")
    if value < 1:
        return max(1, round(value * n_scenes))
    if value != int(value):
        raise ConfigError(f"--limit {limit} is neither a whole count nor a fraction below 1")
    return int(value)


def device_map_for(device: str) -> dict[str, Any]:
    """``--device cuda:1`` / ``cpu`` / ``mps``: the whole model on that device (accelerate's ``{"": device}``);
    a device this machine does not have is refused in one line."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"--device {device!r} is not a device: use cpu, cuda, cuda:N or mps") from err
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is visible here; use --device cpu")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available here; use --device cpu")
    elif target.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: use cpu, cuda, cuda:N or mps")
    return {"": str(target) if target.index is not None or target.type != "cuda" else "cuda:0"}


def parse_batch_size(text: str | None) -> int | str | None:
    """``--batch-size``: a positive count, or ``auto`` (the largest that fits, found by halving on out-of-memory)."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError as err:
        raise ConfigError(f"--batch-size {text!r} must be a positive count or 'auto'") from err
    return value


def find_batch_size(trial: Any, start: int = AUTO_BATCH_START, largest: int | None = None) -> int:
    """The largest of ``start``, ``start/2``, ..., 1 (capped at ``largest``) for which ``trial(size)`` runs without
    ``torch.OutOfMemoryError`` (lm-eval's and accelerate's ``find_executable_batch_size`` rule)."""
    size = max(1, min(start, largest or start))
    while True:
        try:
            trial(size)
            return size
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size == 1:
                raise ConfigError(
                    "--batch-size auto: even one example per forward runs out of memory: shard the "
                    "model with --device-map auto (and --max-memory) or use --dtype bfloat16"
                ) from None
            size //= 2


SAMPLE_QUESTION = "Is there a red circle in the image?"


def check_chat_template(template: str, flag: str = "--chat-template", system_prompt: str | None = None) -> str:
    """A user's chat template, compiled and rendered once on a sample prompt before any model loads: a Jinja syntax
    error, a template that raises on mmdiag's conversation (an image and a question, a system turn when
    ``system_prompt`` is set), or one that writes nothing for the image (no image placeholder: the model would
    never see its image) is a one-line ConfigError."""
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(with_image: bool) -> str:
        parts = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": SAMPLE_QUESTION}]
        conversation = [{"role": "user", "content": parts}]
        if system_prompt:
            conversation.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        rendered, _ = render_jinja_template([conversation], chat_template=template, add_generation_prompt=True)
        return rendered[0]

    try:
        with_image, without = render(True), render(False)
    except Exception as err:  # noqa: BLE001 - jinja2 raises errors of many kinds (syntax, undefined, raise_exception)
        line = getattr(err, "lineno", None)
        where = f" at line {line}" if line else ""
        message = str(err).splitlines()[0] if str(err) else ""
        raise ConfigError(
            f"{flag} cannot render a sample prompt{where} ({err.__class__.__name__}: {message}): fix "
            "the template" + (", or drop --system-prompt if it has no system turn" if system_prompt else "")
        ) from err
    if with_image == without:
        raise ConfigError(
            f"{flag} writes nothing for the image part of a message (no image placeholder): the model "
            "would never see its image; render {'type': 'image'} content as the model's image token"
        )
    return template
