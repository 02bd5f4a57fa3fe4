"""lm-eval habits: --model-args, --gen-kwargs, --limit, --device, --batch-size auto, --system-prompt,
--chat-template, --verbosity; every mistake is one line, exit 2."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import QUICK

from mmdiag.adapters import load_adapter
from mmdiag.cli import main
from mmdiag.errors import ConfigError
from mmdiag.run.harness_flags import (
    check_gen_kwargs,
    device_map_for,
    find_batch_size,
    limited_scenes,
    parse_key_values,
    split_model_args,
)


def test_key_values_are_typed_like_lm_eval():
    assert parse_key_values(
        "pretrained=/m,dtype=bfloat16,trust_remote_code=True,max_new_tokens=8,top_p=0.9,x=none", "--model-args"
    ) == {
        "pretrained": "/m",
        "dtype": "bfloat16",
        "trust_remote_code": True,
        "max_new_tokens": 8,
        "top_p": 0.9,
        "x": None,
    }
    assert parse_key_values('{"revision": "main"}', "--model-args") == {"revision": "main"}
    with pytest.raises(ConfigError, match="'dtype' is not key=value"):
        parse_key_values("dtype", "--model-args")


def test_model_args_map_to_loading_options_and_from_pretrained():
    model, options, extras = split_model_args(
        {
            "pretrained": "/m",
            "torch_dtype": "bfloat16",
            "parallelize": True,
            "revision": "v1",
            "attn_implementation": "sdpa",
        }
    )
    assert model == "/m" and options == {"dtype": "bfloat16", "device_map": "auto"}
    assert extras == {"revision": "v1", "attn_implementation": "sdpa"}
    with pytest.raises(ConfigError, match="unknown key 'temperature'.*accepted: .*revision"):
        split_model_args({"temperature": 0.1})


def test_gen_kwargs_are_checked():
    assert check_gen_kwargs({"max_new_tokens": 8, "temperature": 1}) == {"max_new_tokens": 8, "temperature": 1.0}
    assert check_gen_kwargs({"do_sample": "yes", "max_new_tokens": 1e3}) == {"do_sample": True, "max_new_tokens": 1000}
    assert check_gen_kwargs({"do_sample": "off"}) == {"do_sample": False}
    for bad, message in (
        ({"beams": 3}, "unknown key 'beams'"),
        ({"max_new_tokens": "many"}, "must be an integer"),
        ({"do_sample": "maybe"}, "must be true or false"),
        ({"max_new_tokens": 0}, "from 1"),
        ({"top_p": -1.0}, "above 0"),
        ({"top_p": 5.0}, "above 0 to 1"),
        ({"num_beams": 0}, "from 1"),
        ({"max_new_tokens": 1e9}, "to 8192"),
        ({"temperature": float("nan")}, "got nan"),
        ({"temperature": float("inf")}, "got inf"),
        ({"max_new_tokens": 2.5}, "must be an integer"),
        ({"min_new_tokens": 9, "max_new_tokens": 4}, "above 'max_new_tokens'"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_gen_kwargs(bad)


@pytest.mark.parametrize("spelling", ["no", "off", "false", "FALSE", "0", " No "])
def test_security_options_spelled_no_stay_off(spelling):
    _, options, _ = split_model_args(
        parse_key_values(f"trust_remote_code={spelling},allow_pickle={spelling}", "--model-args")
    )
    assert options == {"trust_remote_code": False, "allow_pickle": False}
    _, options, _ = split_model_args(parse_key_values(json.dumps({"trust_remote_code": spelling}), "--model-args"))
    assert options == {"trust_remote_code": False}


def test_security_options_take_only_boolean_words():
    for spelling in ("maybe", "nope", "2", "[]", "yes please"):
        with pytest.raises(ConfigError, match="trust_remote_code must be true or false"):
            split_model_args(parse_key_values(f"trust_remote_code={spelling}", "--model-args"))
    _, options, _ = split_model_args(parse_key_values("trust_remote_code=Yes", "--model-args"))
    assert options == {"trust_remote_code": True}
    from mmdiag.adapters.hf_loading import LoadOptions

    assert LoadOptions(trust_remote_code="no", allow_pickle="off") == LoadOptions()  # the library too
    with pytest.raises(ConfigError, match="allow_pickle must be true or false"):
        LoadOptions(allow_pickle="sure")


def test_attn_implementation_is_checked_before_loading():
    assert split_model_args({"attn_implementation": "sdpa"})[2] == {"attn_implementation": "sdpa"}
    with pytest.raises(ConfigError, match="not an attention implementation"):
        split_model_args({"attn_implementation": "fastest"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="flash_attention_2 cannot run here.*use sdpa or eager"):
            split_model_args({"attn_implementation": "flash_attention_2"})


def test_limit_is_a_count_or_a_fraction():
    assert limited_scenes("20", 48) == 20 and limited_scenes("0.25", 48) == 12 and limited_scenes("0.001", 48) == 1
    for bad in ("0", "-3", "2.5", "half", "nan", "inf", "-inf", "1e400"):
        with pytest.raises(ConfigError, match="--limit"):
            limited_scenes(bad, 48)


def test_device_is_checked_against_this_machine():
    assert device_map_for("cpu") == {"": "cpu"}
    with pytest.raises(ConfigError, match="not a device"):
        device_map_for("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is visible here"):
            device_map_for("cuda:0")


def test_auto_batch_size_halves_on_out_of_memory():
    tried = []

    def trial(size):
        tried.append(size)
        if size > 12:
            raise torch.OutOfMemoryError("CUDA out of memory")

    assert find_batch_size(trial, 64, largest=48) == 12 and tried == [48, 24, 12]  # capped at the scene count

    def never(size):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ConfigError, match="even one example per forward runs out of memory"):
        find_batch_size(never, 4)


TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}SYS: {{ m['content'][0]['text'] }}\n"
    "{% else %}USER: <image>\n{{ m['content'][1]['text'] }}{% endif %}{% endfor %} ASSISTANT:"
)


def test_system_prompt_chat_template_and_gen_kwargs_reach_the_prompts(tiny_paths):
    llava = load_adapter(str(tiny_paths["llava"]))
    llava.configure_prompting(system_prompt="Be careful.", chat_template=TEMPLATE)
    assert llava.format_prompt("Is there a cat?") == "SYS: Be careful.\nUSER: <image>\nIs there a cat? ASSISTANT:"
    llava.configure_prompting(system_prompt="Be careful.", chat_template="none")
    assert llava.format_prompt("Is there a cat?") == "Be careful. USER: <image>\nIs there a cat? ASSISTANT:"
    from PIL import Image

    image = Image.new("RGB", (32, 32), "red")
    llava.configure_prompting(gen_kwargs={"max_new_tokens": 2})
    short = llava.generate([image], ["Describe."], max_new_tokens=20)[0]
    assert len(llava.tokenizer(short, add_special_tokens=False).input_ids) <= 2
    blip2 = load_adapter(str(tiny_paths["blip2"]))
    blip2.configure_prompting(system_prompt="Be careful.")
    assert blip2.format_prompt("Is there a cat?") == "Be careful. Question: Is there a cat? Answer:"
    with pytest.raises(ConfigError, match="plain text.*drop --chat-template"):
        blip2.configure_prompting(chat_template=TEMPLATE)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--gen-kwargs", "beams=2"], "--gen-kwargs: unknown key 'beams'"),
        (["--limit", "half"], "--limit 'half' must be a count"),
        (["--limit", "4", "--n-examples", "4"], "give --limit or --n-examples, not both"),
        (["--batch-size", "lots"], "--batch-size 'lots' must be a positive count or 'auto'"),
        (["--batch-size", "0"], "--batch-size"),
        (["--chat-template", "missing.jinja"], "--chat-template missing.jinja: no such file"),
        (["--model-args", "temperature=0"], "--model-args: unknown key 'temperature'"),
        (["--device", "tpu9"], "--device"),
        (["--device", "cpu", "--device-map", "auto"], "give --device"),
        (["--model-args", "dtype=float16", "--dtype", "bfloat16"], "--model-args sets dtype"),
        (["--device", "cpu", "--num-processes", "2"], "--device puts the whole model on one device"),
    ],
)
def test_bad_harness_flags_are_one_line_errors(tmp_path, tiny_paths, capsys, flags, message):
    code = main(
        [
            "audit",
            "--model",
            str(tiny_paths["llava"]),
            "--suite",
            QUICK,
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            *flags,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_prompting_flags_on_a_dual_encoder_are_refused(tmp_path, tiny_paths, capsys):
    code = main(
        [
            "audit",
            "--model",
            str(tiny_paths["clip"]),
            "--suite",
            QUICK,
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            "--system-prompt",
            "hi",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "apply to image-to-text models" in err and len(err.splitlines()) == 1


def test_an_audit_with_harness_flags_records_them(tmp_path, tiny_paths):
    out = tmp_path / "r"
    assert (
        main(
            [
                "audit",
                "--model-args",
                f"pretrained={tiny_paths['llava']},dtype=float32",
                "--suite",
                QUICK,
                "--out",
                str(out),
                "--no-progress",
                "--limit",
                "0.5",
                "--batch-size",
                "auto",
                "--device",
                "cpu",
                "--system-prompt",
                "Be careful.",
                "--gen-kwargs",
                "max_new_tokens=3",
                "--probes",
                "hallucination",
                "--verbosity",
                "warning",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    config = results["metadata"]["config"]
    assert config["n_scenes"] == 4 and config["batch_size"] == 8
    assert config["prompting"] == {"system_prompt": "Be careful.", "gen_kwargs": {"max_new_tokens": 3}}
    assert any(n.startswith("--limit: 4 of the suite's 8 scenes") for n in results["notes"])
    assert any("--batch-size auto: on cpu" in n for n in results["notes"])
    assert results["metadata"]["model"]["source"] == str(tiny_paths["llava"])
