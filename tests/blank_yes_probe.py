"""A probe written the way a third party would: one file, its own metric spec and report section, no core edits.

Does the model say "yes" to an object on a blank image? Per scene, one presence question about its first object,
asked on the scene and on a blank image of the same size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from mmdiag.adapters.generative import ScoreRequest
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.metric_spec import MetricSpec
from mmdiag.probes.sections import Paragraph, ReportSection, Table

SPECS = {
    "blank_yes_rate": MetricSpec(
        "share of yes answers about a scene's object asked on a blank image",
        better="lower",
        reference=0.0,
        reference_label="no hallucination",
        reference_is="ideal",
        computed="yes on the blank image / questions",
        ci="",
        paired="ratio",
        paired_unit="scene (yes on blank, questions)",
        failure="the model sees objects in a blank image: its language prior answers",
    ),
}


class BlankYesProbe(Probe):
    name = "blank_yes"
    kinds = ("generative",)
    metric_specs = SPECS

    def __init__(self, resolution: int = 64, seed: int = 0) -> None:
        self.resolution = resolution
        self.seed = seed

    def examples(self, data: Any, adapter: Any) -> list[ProbeExample]:
        return [ProbeExample(f"{e.example_id}/blank", e, {"object": e.object_names[0]}) for e in data if e.object_names]

    def run_example(self, adapter: Any, example: ProbeExample) -> ExampleOutput:
        image = example.example.image(self.resolution)
        question = f"Is there a {example.inputs['object']} in the image?"
        blank = Image.new("RGB", image.size, (255, 255, 255))
        real, empty = adapter.answer_scores_batch([ScoreRequest(image, [question]), ScoreRequest(blank, [question])])
        return ExampleOutput(
            {
                "question": question,
                "yes_on_image": bool(real.p_yes[0] > real.p_no[0]),
                "yes_on_blank": bool(empty.p_yes[0] > empty.p_no[0]),
            }
        )

    def aggregate(
        self, adapter: Any, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        blank = np.array([r["yes_on_blank"] for r in records], dtype=float)
        return ProbeResult(self.name, len(records), 0, {"blank_yes_rate": Metric(float(blank.mean()), n=len(blank))})

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {"blank_yes_rate": (float(values["yes_on_blank"]), 1.0)}

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection:
        rows = tuple(
            (r["values"]["question"], r["values"]["yes_on_image"], r["values"]["yes_on_blank"])
            for r in records[:5]
            if "values" in r
        )
        return ReportSection(
            "blank-yes",
            "Yes on a blank image",
            "One presence question per scene, on the scene and on a blank image.",
            [
                Table(("question", "yes on the scene", "yes on blank"), rows),
                Paragraph("<b>not bold</b>: strings are escaped", note=True),
            ],
        )
