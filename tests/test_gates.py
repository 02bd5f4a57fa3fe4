"""Gates: the parser (value and CI-bound gates, bad strings), evaluation (undefined metrics fail with a reason),
per-kind suite gates, and the regression gate of ``mmdiag compare``."""

from __future__ import annotations

import json

import pytest
from helpers import QUICK

from mmdiag.cli import main
from mmdiag.errors import ConfigError
from mmdiag.run.compare import (
    Comparison,
    PairedDifference,
    better_direction,
    find_regressions,
)
from mmdiag.run.gates import Gate, evaluate_gates, parse_gate
from mmdiag.run.suites import parse_suite


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hallucination.f1>=0.8", Gate("hallucination", "f1", ">=", 0.8)),
        ("  hallucination.f1 >= .8 ", Gate("hallucination", "f1", ">=", 0.8)),
        (
            "hallucination.multimodal_gain.ci_low >= 0.25",
            Gate("hallucination", "multimodal_gain", ">=", 0.25, "ci_low"),
        ),
        (
            "hallucination.prior_persistence.ci_high<3e-1",
            Gate("hallucination", "prior_persistence", "<", 0.3, "ci_high"),
        ),
        ("spatial.half_retention.value > -1", Gate("spatial", "half_retention", ">", -1.0)),
        ("attention.failed_examples <= 0", Gate("attention", "failed_examples", "<=", 0.0)),
    ],
)
def test_gates_parse(text, expected):
    assert parse_gate(text) == expected
    assert parse_gate(str(expected)) == expected  # the printed form reads back


@pytest.mark.parametrize(
    "text",
    [
        "f1 is high",
        "hallucination.f1>=1.2.3",
        "hallucination.f1>=.",
        "hallucination.f1 => 0.8",
        "hallucination.f1.ci_mid >= 0.8",
        "hallucination.f1 >= 0.8x",
        "hallucination.f1>=",
        "attention.failed_examples.ci_high <= 0",
    ],
)
def test_bad_gates_are_one_line_config_errors(text):
    with pytest.raises(ConfigError) as err:
        parse_gate(text)
    assert "\n" not in str(err.value) and "gate" in str(err.value)


def test_bad_gate_on_the_command_line_exits_2_with_one_line(tmp_path, capsys):
    assert main(["audit", "--out", str(tmp_path / "r"), "--gate", "hallucination.f1>=1.2.3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmdiag: error: cannot read gate") and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before the run folder is touched


PROBES = {
    "hallucination": {
        "n_failed": 0,
        "metrics": {
            "multimodal_gain": {"value": 0.40, "ci_low": 0.30, "ci_high": 0.50, "description": ""},
            "mirror_sensitivity": {"value": None, "ci_low": None, "ci_high": None, "description": ""},
            "chair_i": {"value": 0.1, "ci_low": None, "ci_high": None, "description": ""},
        },
    },
    "spatial": {"error": "every example failed; first: boom", "n_failed": 3, "metrics": {}},
}


def test_value_and_bound_gates_read_the_right_number():
    low, high, point = evaluate_gates(
        [
            parse_gate("hallucination.multimodal_gain.ci_low >= 0.35"),
            parse_gate("hallucination.multimodal_gain.ci_high <= 0.45"),
            parse_gate("hallucination.multimodal_gain >= 0.35"),
        ],
        PROBES,
    )
    assert (low.value, low.passed, low.margin) == (0.30, False, pytest.approx(-0.05))
    assert (high.value, high.passed) == (0.50, False)
    assert (point.value, point.passed, point.margin) == (0.40, True, pytest.approx(0.05))
    assert low.estimate == 0.40 and (low.ci_low, low.ci_high) == (0.30, 0.50)
    assert "not using the image" in low.meaning and point.meaning is None


def test_undefined_metrics_fail_their_gate_with_the_reason():
    outcomes = evaluate_gates(
        [
            parse_gate("hallucination.mirror_sensitivity.ci_low >= 0.5"),
            parse_gate("hallucination.chair_i.ci_high <= 0.5"),
            parse_gate("spatial.half_retention >= 0"),
            parse_gate("attention.blind_answer_shift.ci_low >= 0.3"),
        ],
        PROBES,
        skipped={"attention": "not applicable to dual_encoder models"},
    )
    assert [o.passed for o in outcomes] == [False] * 4 and all(o.value is None for o in outcomes)
    reasons = [o.reason for o in outcomes]
    assert "undefined on this run" in reasons[0]
    assert "no confidence interval" in reasons[1]
    assert "spatial failed: every example failed" in reasons[2]
    assert "did not run: not applicable to dual_encoder" in reasons[3]


def test_suite_gates_per_model_kind():
    data = {
        "probes": {"hallucination": {}},
        "gates": {
            "all": ["hallucination.failed_examples <= 0"],
            "generative": ["hallucination.accuracy.ci_low >= 0.7"],
            "dual_encoder": ["hallucination.pair_accuracy.ci_low>=0.7"],
        },
    }
    config = parse_suite(data, "mine.yaml").config
    assert config.gates_for("generative") == (
        "hallucination.failed_examples <= 0",
        "hallucination.accuracy.ci_low >= 0.7",
    )
    assert config.gates_for("dual_encoder")[-1] == "hallucination.pair_accuracy.ci_low >= 0.7"
    with pytest.raises(ConfigError, match="unknown key 'gates.llava'"):
        parse_suite({**data, "gates": {"llava": []}}, "mine.yaml")
    with pytest.raises(ConfigError, match="'gates.generative' must be a list"):
        parse_suite({**data, "gates": {"generative": "hallucination.f1>=0"}}, "mine.yaml")
    # gates do not change what is measured: the run identity (resume, paired compare) ignores them
    other = parse_suite({**data, "gates": []}, "mine.yaml").config
    assert config.identity() == other.identity() and config.to_dict() != other.to_dict()


def _difference(metric, mean, low, high, probe="hallucination"):
    return PairedDifference(probe, metric, "cand", "base", 40, mean, low, high, better_direction(probe, metric))


def test_regressions_need_the_worse_direction_beyond_tolerance_and_a_ci_excluding_zero():
    comparison = Comparison(
        runs=[],
        paired=[
            _difference("accuracy", -0.20, -0.30, -0.10),  # worse, CI excludes 0 -> regression
            _difference("multimodal_gain", -0.20, -0.40, 0.01),  # worse but CI includes 0 -> not
            _difference("prior_persistence_cooccurring", 0.15, 0.05, 0.25),  # lower is better: worse -> regression
            _difference("adversarial_gap", -0.15, -0.25, -0.05),  # lower is better: improved -> not
            _difference("yes_ratio", -0.30, -0.40, -0.20),  # no better direction -> never a regression
            _difference("blind_answer_shift", -0.04, -0.06, -0.02, probe="attention"),  # within a 0.05 tolerance
            _difference(
                "mean_image_mass", -0.20, -0.25, -0.15, probe="attention"
            ),  # follows the token count: not comparable
        ],
    )
    assert better_direction("hallucination", "yes_ratio") == 0 and better_direction("nope", "x") == 0
    assert [d.metric for d in find_regressions(comparison, 0.0)] == [
        "accuracy",
        "prior_persistence_cooccurring",
        "blind_answer_shift",
    ]
    assert [d.metric for d in find_regressions(comparison, 0.05)] == ["accuracy", "prior_persistence_cooccurring"]
    assert comparison.regression_tolerance == 0.05


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory):
    """The shipped default model and its image-blind variant on the same quick hallucination suite."""
    from mmdiag.zoo.build import SHIPPED_DIR

    root = tmp_path_factory.mktemp("regression")
    model = str(SHIPPED_DIR / "ref-llava-mlp")
    for name, extra in (("base", []), ("blind", ["--plant", "image-blind"])):
        assert (
            main(
                [
                    "audit",
                    "--model",
                    model,
                    "--suite",
                    QUICK,
                    "--probes",
                    "hallucination",
                    "--n-examples",
                    "10",
                    "--out",
                    str(root / name),
                    "--no-progress",
                    *extra,
                ]
            )
            == 0
        )  # the quick suite gates integrity only
    return root


def test_compare_fails_on_a_regression_and_names_the_metric(zoo_runs, capsys):
    out = zoo_runs / "cmp"
    assert (
        main(
            [
                "compare",
                str(zoo_runs / "base"),
                str(zoo_runs / "blind"),
                "--out",
                str(out),
                "--fail-on-regression",
                "0.05",
            ]
        )
        == 1
    )
    printed = capsys.readouterr().out
    assert "REGRESSION hallucination.accuracy" in printed and "REGRESSION hallucination.multimodal_gain" in printed
    assert "FAIL:" in printed
    data = json.loads((out / "compare.json").read_text())
    assert {d["metric"] for d in data["regressions"]} >= {"accuracy", "multimodal_gain"}
    assert "Regression check: FAIL" in (out / "compare.md").read_text()
    assert "Regression check" in (out / "compare.html").read_text()


def test_compare_passes_a_run_against_itself_and_refuses_unpaired_runs(zoo_runs, tmp_path, capsys, tiny_paths):
    assert (
        main(
            [
                "compare",
                str(zoo_runs / "base"),
                str(zoo_runs / "base"),
                "--out",
                str(tmp_path / "same"),
                "--fail-on-regression",
            ]
        )
        == 0
    )
    assert "PASS: 0 regression(s)" in capsys.readouterr().out
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--suite",
                QUICK,
                "--probes",
                "hallucination",
                "--n-examples",
                "4",
                "--seed",
                "7",
                "--out",
                str(tmp_path / "other"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "compare",
                str(zoo_runs / "base"),
                str(tmp_path / "other"),
                "--out",
                str(tmp_path / "x"),
                "--fail-on-regression",
            ]
        )
        == 2
    )
    assert "no examples pair with the baseline" in capsys.readouterr().err
