"""What each intervention costs: seconds per example of the hallucination and attention probes under knockout,
FastV, PAI and VCD against none, on the reference model (release suite's questions), as ratios in one run; and the
information-flow probe's time per example against the release suite's whole hallucination probe on the same scenes.

    python bench/interventions.py [--n-examples 48] [--record]

Each configuration is one in-process audit of the same scenes and seed (attention and hallucination probes, the
outputs no gate reads left out); the figure is its ``metadata.seconds_per_example`` over the plain run's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "none": (),
    "knockout (every layer)": ("knockout",),
    "fastv (k=2, 50 %)": ("fastv",),
    "pai (alpha 0.2, gamma 1.1, layers 2-last)": ("pai",),
    "vcd (alpha 1, beta 0.1, t 500)": ("vcd",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-examples", type=int, default=48)
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    from mmdiag import api
    from mmdiag.run.suites import load_suite
    from mmdiag.zoo.build import SHIPPED_DIR

    config = load_suite(ROOT / "probes" / "release.yaml").config
    keep = ("attention", "hallucination")
    config = replace(
        config,
        probes=keep,
        n_examples=args.n_examples,
        probe_params={
            "attention": {"generate_tokens": 0, "untrained_baseline": False},
            "hallucination": {**config.probe_params.get("hallucination", {}), "free_text": False, "captions": False},
        },
        gates=(),
        kind_gates={},
    )
    seconds: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, interventions in CONFIGS.items():
            outcome = api.audit(
                str(SHIPPED_DIR / "ref-llava-mlp"),
                Path(tmp) / label.split()[0],
                replace(config, interventions=interventions),
                progress=False,
            )
            seconds[label] = outcome.results["metadata"]["seconds_per_example"]
            print(json.dumps({"configuration": label, "seconds_per_example": seconds[label]}), flush=True)
    base = seconds["none"]
    ratios = {
        label: {probe: round(value / base[probe], 2) for probe, value in per_probe.items()}
        for label, per_probe in seconds.items()
        if label != "none"
    }
    print(json.dumps({"ratio_to_none": ratios}))
    with tempfile.TemporaryDirectory() as tmp:  # the flow probe beside the release suite's full hallucination probe
        release = load_suite(ROOT / "probes" / "release.yaml").config
        flow_config = replace(
            release, probes=("hallucination", "flow"), n_examples=args.n_examples, gates=(), kind_gates={}
        )
        outcome = api.audit(str(SHIPPED_DIR / "ref-llava-mlp"), Path(tmp) / "flow", flow_config, progress=False)
        flow_seconds = outcome.results["metadata"]["seconds_per_example"]
    flow_ratio = round(flow_seconds["flow"] / flow_seconds["hallucination"], 2)
    print(json.dumps({"flow_over_hallucination": flow_ratio, "seconds_per_example": flow_seconds}))
    if args.record:
        from record import figure, record

        record(
            "interventions",
            [
                figure(
                    f"{label}: {probe} time per example / none",
                    ratio,
                    "×",
                    "",
                    f"{seconds[label][probe]:.3f} s vs {base[probe]:.3f} s, {args.n_examples} scenes, ref-llava-mlp",
                )
                for label, per_probe in ratios.items()
                for probe, ratio in per_probe.items()
            ]
            + [
                figure(
                    "flow probe time per example / the release hallucination probe's",
                    flow_ratio,
                    "×",
                    "",
                    f"{flow_seconds['flow']:.3f} s vs {flow_seconds['hallucination']:.3f} s (free text and captions "
                    f"included), {args.n_examples} release scenes, ref-llava-mlp, 4 LLM layers",
                )
            ],
        )


if __name__ == "__main__":
    main()
