"""lm-eval's habits on the command line: underscore spellings, --tasks, "did you mean", help on every flag."""

from __future__ import annotations

import argparse

import pytest

from mmdiag.cli import _apply_tasks, build_parser, main
from mmdiag.errors import ConfigError


def test_lm_eval_spellings_are_the_same_flags():
    words = "audit --model_args pretrained=x --batch_size 4 --output_path o --log_samples --n_examples 3 --no_progress"
    args = build_parser().parse_args(words.split())
    assert (args.model_args, args.batch_size, args.out, args.log_samples, args.n_examples, args.no_progress) == (
        "pretrained=x",
        "4",
        "o",
        True,
        3,
        True,
    )
    assert "model_args" not in build_parser().format_help() + _command_help("audit")  # accepted, not listed twice


def test_a_prefix_of_one_flags_spellings_is_that_flag(capsys):
    parser = build_parser()
    assert parser.parse_args(["audit", "--output", "o"]).out == "o"  # --output-path and --output_path: one flag
    assert main(["audit", "--n", "3"]) == 2  # a prefix of several flags is still refused
    assert "ambiguous option: --n could match" in capsys.readouterr().err


def _command_help(name: str) -> str:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name].format_help()


def test_an_unknown_flag_is_named_by_its_command_with_the_closest_flag(capsys):
    assert main(["audit", "--n-exampels", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mmdiag: error: unrecognized arguments: --n-exampels 3; did you mean --n-examples? (see 'mmdiag audit --help')"
    )
    assert main(["pope", "--anwsers", "x"]) == 2
    assert "did you mean --answers?" in capsys.readouterr().err
    assert main(["audit", "--telepathy"]) == 2
    assert "did you mean" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "tasks, suite, probes",
    [("quick", "quick", None), ("attention,hallucination", None, "attention,hallucination")],
)
def test_tasks_names_a_suite_or_probes(tasks, suite, probes):
    args = argparse.Namespace(tasks=tasks, suite=None, probes=None)
    _apply_tasks(args)
    assert (args.suite, args.probes) == (suite, probes)


def test_tasks_that_name_nothing_or_clash_are_refused():
    with pytest.raises(ConfigError, match="name one suite"):
        _apply_tasks(argparse.Namespace(tasks="pope_random", suite=None, probes=None))
    with pytest.raises(ConfigError, match="not with them"):
        _apply_tasks(argparse.Namespace(tasks="quick", suite="release", probes=None))


def test_every_flag_of_every_command_has_help():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, command in sub.choices.items()
        for action in command._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []
