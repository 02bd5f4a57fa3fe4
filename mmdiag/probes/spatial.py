"""Spatial information through the projector, first form: linear probes per feature stage.

Scenes hold one object, so every label is exact and unambiguous: its colour and shape (controls that
should survive every stage), which half of the image it is in, its 3x3 grid cell, its centre (x, y) as
a regression, and a *control task* (Hewitt & Liang 2019: the grid-cell labels replaced by a fixed random
function of the object type), so selectivity = accuracy - control accuracy can be reported.

Readout (the same for every stage, whatever its token count): each token is mapped to 16 dims by a
seeded Gaussian projection, tokens are flattened, then standardised -> PCA (at most 32 components,
fitted inside each fold) -> logistic / ridge regression, 5-fold cross-validated. Accuracy comes from
out-of-fold predictions with a bootstrap CI over scenes. Retention = (stage - chance) / (pre - chance),
with ``vision_encoder`` as "pre", reported only where "pre" beats chance by at least 0.05 (else the
ratio is noise over noise and is left undefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.scenes.generate import SceneRecipe
from mmdiag.scenes.model import Scene
from mmdiag.scenes.render import render
from mmdiag.scenes.vocabulary import OBJECT_TYPES

TOKEN_DIMS = 16
PCA_BUDGET = 32
FOLDS = 5
MIN_DECODABLE = 0.05  # retention is reported only where "pre" beats chance by this much
CLASSIFICATION = ("colour", "shape", "half", "grid_cell", "control")
REGRESSION = ("centre_x", "centre_y")
POSITION_TASKS = ("half", "grid_cell", "centre_x", "centre_y")


@dataclass
class SpatialResult(ProbeResult):
    """Stage x task scores (accuracy or R²) with CIs, chance levels and retention."""

    stages: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # stage -> task -> stats
    readout: str = ""


class SpatialProbe(Probe):
    """Linear decodability of object position and identity before vs after the projector."""

    name = "spatial"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_names = {
        GENERATIVE: ("position_retention", "grid_cell_retention", "half_retention", "colour_retention", "grid_cell_selectivity"),
        DUAL_ENCODER: ("position_retention", "grid_cell_retention", "half_retention", "colour_retention", "grid_cell_selectivity"),
    }

    def __init__(self, resolution: int = 64, seed: int = 0, min_scenes: int = 40) -> None:
        self.resolution = resolution
        self.seed = seed
        self.min_scenes = min_scenes

    def scene_recipe(self) -> SceneRecipe:
        """Spatial labels need exactly one object per scene."""
        return SceneRecipe(min_objects=1, max_objects=1)

    def examples(self, scenes: list[Scene], adapter: Adapter) -> list[ProbeExample]:
        return [ProbeExample(f"{s.scene_id}/spatial", s) for s in scenes if len(s.objects) == 1]

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Stage features of all the examples' images in one forward."""
        stages = adapter.feature_stages([render(ex.scene, self.resolution) for ex in examples])
        return [self._output(ex, [(s.name, s.tokens[i]) for s in stages]) for i, ex in enumerate(examples)]

    def _output(self, example: ProbeExample, stages: list[tuple[str, torch.Tensor]]) -> ExampleOutput:
        obj = example.scene.objects[0]
        row, col = obj.grid_cell(3, 3)
        labels = {
            "colour": obj.colour,
            "shape": obj.shape,
            "half": "left" if obj.cx < 0.5 else "right",
            "grid_cell": f"{row},{col}",
            "control": _control_label(obj.name, self.seed),
            "centre_x": obj.cx,
            "centre_y": obj.cy,
        }
        arrays = {name: _token_projection(tokens, self.seed) for name, tokens in stages}
        return ExampleOutput({"labels": labels, "stages": [name for name, _ in stages],
                              "tokens": {name: int(tokens.shape[0]) for name, tokens in stages}}, arrays)

    def aggregate(self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]) -> ProbeResult:
        stages = records[0]["stages"] if records else []
        result = SpatialResult(
            probe=self.name, n_examples=len(records), n_failed=0, metrics={}, stages=stages,
            tasks=[*CLASSIFICATION, *REGRESSION],
            readout=f"per-token seeded Gaussian projection to {TOKEN_DIMS} dims, flattened, standardised, "
                    f"PCA <= {PCA_BUDGET}, {FOLDS}-fold CV (logistic / ridge); scores from out-of-fold predictions",
        )
        if len(records) < self.min_scenes:
            result.notes.append(f"only {len(records)} scenes (< {self.min_scenes}): too few for stable probes, raise --n-scenes")
        for stage in stages:
            features = np.stack([a[stage] for a in arrays])
            result.scores[stage] = {task: self._score(features, [r["labels"][task] for r in records], task) for task in result.tasks}
        if stages:
            pre, post = stages[0], stages[-1]
            for stage in stages:
                for task, stats in result.scores[stage].items():
                    stats["retention"] = _retention(stats, result.scores[pre][task])
                    if task != "control" and task in CLASSIFICATION:
                        control = result.scores[stage]["control"]["score"]
                        stats["selectivity"] = None if stats["score"] is None or control is None else stats["score"] - control
            final = result.scores[post]
            position = [final[t]["retention"] for t in POSITION_TASKS if final[t]["retention"] is not None]
            result.metrics = {
                "position_retention": Metric(float(np.mean(position)) if position else None,
                                             description=f"mean retention of position tasks, {post} vs {pre}"),
                "grid_cell_retention": Metric(final["grid_cell"]["retention"], description="3x3 cell, (post-chance)/(pre-chance)"),
                "half_retention": Metric(final["half"]["retention"], description="left/right half"),
                "colour_retention": Metric(final["colour"]["retention"], description="control attribute: should stay near 1"),
                "grid_cell_selectivity": Metric(final["grid_cell"].get("selectivity"), description="grid-cell accuracy - control-task accuracy"),
            }
        return result

    def _score(self, features: np.ndarray, labels: list[Any], task: str) -> dict[str, float | None]:
        try:
            return self._cross_validated(features, labels, task)
        except ValueError:  # a training fold with a single class: too few scenes for this task
            return {"score": None, "ci_low": None, "ci_high": None, "chance": None,
                    "metric": "r2" if task in REGRESSION else "accuracy"}

    def _cross_validated(self, features: np.ndarray, labels: list[Any], task: str) -> dict[str, float | None]:
        n = len(labels)
        if n < 2 * FOLDS:
            raise ValueError("too few scenes")
        if task in REGRESSION:
            y = np.asarray(labels, dtype=float)
            model = make_pipeline(StandardScaler(), PCA(n_components=min(PCA_BUDGET, n - n // FOLDS - 1, features.shape[1]),
                                                        random_state=self.seed), Ridge(alpha=1.0))
            pred = cross_val_predict(model, features, y, cv=KFold(FOLDS, shuffle=True, random_state=self.seed))
            total = float(((y - y.mean()) ** 2).sum())
            r2 = 1 - float(((y - pred) ** 2).sum()) / total if total > 0 else None
            return {"score": r2, "ci_low": None, "ci_high": None, "chance": 0.0, "metric": "r2"}
        y = np.asarray(labels)
        classes, counts = np.unique(y, return_counts=True)
        chance = float(counts.max() / n)
        if len(classes) < 2:
            return {"score": None, "ci_low": None, "ci_high": None, "chance": chance, "metric": "accuracy"}
        cv = (StratifiedKFold(FOLDS, shuffle=True, random_state=self.seed) if counts.min() >= FOLDS
              else KFold(FOLDS, shuffle=True, random_state=self.seed))
        model = make_pipeline(StandardScaler(), PCA(n_components=min(PCA_BUDGET, n - n // FOLDS - 1, features.shape[1]),
                                                    random_state=self.seed), LogisticRegression(max_iter=2000))
        correct = (cross_val_predict(model, features, y, cv=cv) == y).astype(float)
        low, high = bootstrap_ci(correct, seed=self.seed)
        return {"score": float(correct.mean()), "ci_low": low, "ci_high": high, "chance": chance, "metric": "accuracy"}


def _token_projection(tokens: torch.Tensor, seed: int) -> np.ndarray:
    """[n_tokens, dim] -> flattened [n_tokens * TOKEN_DIMS] through a seeded Gaussian map (same per dim)."""
    dim = tokens.shape[-1]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + dim)
    projection = torch.randn(dim, TOKEN_DIMS, generator=generator) / dim**0.5
    return (tokens.float().cpu() @ projection).flatten().numpy()


def _control_label(object_type: str, seed: int) -> str:
    """A fixed random grid cell per object type (the Hewitt & Liang control task)."""
    rng = np.random.default_rng([seed, 99])
    cells = rng.integers(0, 9, size=len(OBJECT_TYPES))
    cell = int(cells[OBJECT_TYPES.index(object_type)])
    return f"{cell // 3},{cell % 3}"


def _retention(stats: dict[str, Any], pre: dict[str, Any]) -> float | None:
    if stats["score"] is None or pre["score"] is None or pre["chance"] is None:
        return None
    denominator = pre["score"] - pre["chance"]
    if denominator < MIN_DECODABLE:  # nothing decodable before the projector: retention is undefined
        return None
    return float((stats["score"] - stats["chance"]) / denominator)
