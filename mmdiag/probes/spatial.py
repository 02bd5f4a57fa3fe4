"""Spatial-relation information through the projector: linear probes per feature stage.

Stages: the vision encoder's patches (pre-projector), every stage the adapter exposes after it (BLIP-2:
Q-Former output and language projection; LLaVA: the projector), and the LLM's hidden states at the image
positions after a middle and the last layer (generative models). Each example is one single-object scene
(exact labels) plus a two-object twin: the scene with a reference object inserted.

Tasks: ``colour``, ``shape`` (controls that should survive everywhere), ``half`` (left/right), ``grid_cell``
(3x3), ``centre_x``/``centre_y`` (R²), ``left_of``/``above`` (is the reference object left of / above the
other — identities fixed by construction, sides drawn by a seeded coin so classes are near-balanced; chance is reported), and ``control`` (Hewitt & Liang 2019: the
grid-cell labels replaced by a fixed random cell per object type). Selectivity = accuracy - control accuracy.

Readouts (see :mod:`mmdiag.probes.spatial_readouts`): an attention-pooled per-token probe and a flattened
PCA probe, the same at every stage. Retention = (stage - chance) / (pre - chance), pre = vision encoder,
defined only where pre beats chance by ``MIN_DECODABLE``. The same probes run on a randomly initialised copy
of the model (the untrained baseline). Also: debiased linear CKA and 10-NN overlap (raw tokens, with CIs and nulls;
:mod:`mmdiag.metrics.similarity`) of every stage against the vision
encoder. CLIP (no projector into an LLM): patch tokens vs the pooled embedding, plus a What'sUp-style test —
does "a A left of a B" beat "a B left of a A" (chance 0.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.metrics.similarity import cka_with_null, knn_overlap_with_null
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.spatial_readouts import (
    FOLDS,
    PCA_BUDGET,
    READOUTS,
    TOKEN_DIMS,
    cross_validated,
    similarity_features,
    project_tokens,
)
from mmdiag.scenes.edits import EditError, insert_object
from mmdiag.scenes.generate import SceneRecipe
from mmdiag.scenes.model import Scene, relations_between
from mmdiag.scenes.render import render
from mmdiag.scenes.vocabulary import OBJECT_TYPES

MIN_DECODABLE = 0.05
CLASSIFICATION = ("colour", "shape", "half", "grid_cell", "left_of", "above", "control")
REGRESSION = ("centre_x", "centre_y")
POSITION_TASKS = ("half", "grid_cell", "centre_x", "centre_y")
RELATION_TASKS = ("left_of", "above")
REFERENCE = ("red circle", "blue square")  # the inserted object (the second when the scene holds the first)
PAIR = "@pair"
SIMILARITY = "similarity:"  # raw-token features of a stage, for CKA and kNN overlap


@dataclass
class SpatialResult(ProbeResult):
    """Readout x stage x task scores with CIs, chance, retention, selectivity and the untrained baseline."""

    stages: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    readout: str = ""
    scores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # primary readout: stage -> task -> stats
    readouts: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)  # readout -> stage -> task
    cka: dict[str, float | None] = field(default_factory=dict)  # stage -> CKA with the vision encoder
    knn_overlap: dict[str, float | None] = field(default_factory=dict)
    similarity: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> CKA and kNN with CI and null
    whatsup: dict[str, Any] = field(default_factory=dict)


class SpatialProbe(Probe):
    """Linear decodability of object identity, position and pairwise relations, stage by stage."""

    name = "spatial"
    kinds = (GENERATIVE, DUAL_ENCODER)
    _common = ("position_retention", "grid_cell_retention", "half_retention", "relation_retention", "colour_retention",
               "grid_cell_selectivity", "projector_cka", "projector_knn_overlap", "untrained_grid_cell_accuracy",
               "projector_grid_cell_above_chance")
    metric_names = {GENERATIVE: _common, DUAL_ENCODER: (*_common, "whatsup_accuracy")}

    def __init__(self, resolution: int = 64, seed: int = 0, min_scenes: int = 40, untrained_baseline: bool = True,
                 llm_layers: tuple[str, ...] = ("middle", "last")) -> None:
        self.resolution = resolution
        self.seed = seed
        self.min_scenes = min_scenes
        self.untrained_baseline = untrained_baseline
        self.llm_layers = llm_layers
        self._untrained: Adapter | None = None

    def setup(self, adapter: Adapter) -> None:
        self._untrained = adapter.untrained_copy(self.seed) if self.untrained_baseline else None

    def scene_recipe(self) -> SceneRecipe:
        """Position labels need exactly one object per scene (the pair twin is built from it)."""
        return SceneRecipe(min_objects=1, max_objects=1)

    def examples(self, scenes: list[Scene], adapter: Adapter) -> list[ProbeExample]:
        out = []
        for index, scene in enumerate(scenes):
            if len(scene.objects) != 1:
                continue
            pair = _pair_scene(scene, self.seed, index)
            out.append(ProbeExample(f"{scene.scene_id}/spatial", scene, {"pair": pair}))
        return out

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Stage features of every example's scene and pair twin, from the model and its untrained copy."""
        images = [render(ex.scene, self.resolution) for ex in examples]
        pairs = [render(ex.inputs["pair"], self.resolution) if ex.inputs["pair"] is not None else images[i]
                 for i, ex in enumerate(examples)]
        models = {"": adapter, "untrained:": self._untrained} if self._untrained is not None else {"": adapter}
        arrays: list[dict[str, np.ndarray]] = [{} for _ in examples]
        stage_names: list[str] = []
        tokens: dict[str, int] = {}
        for prefix, model in models.items():
            for suffix, batch_images in (("", images), (PAIR, pairs)):
                for stage in self._stages(model, batch_images):
                    if not prefix and not suffix:
                        stage_names.append(stage.name)
                        tokens[stage.name] = int(stage.tokens.shape[1])
                        for i in range(len(examples)):
                            arrays[i][SIMILARITY + stage.name] = similarity_features(stage.tokens[i], self.seed)
                    for i in range(len(examples)):
                        arrays[i][prefix + stage.name + suffix] = project_tokens(stage.tokens[i], self.seed)
        return [ExampleOutput({"labels": _labels(ex, self.seed), "stages": stage_names, "tokens": tokens,
                               **({"whatsup": self._whatsup(adapter, ex, pairs[i])} if adapter.kind == DUAL_ENCODER else {})},
                              arrays[i])
                for i, ex in enumerate(examples)]

    def _stages(self, adapter: Adapter, images: list) -> list:
        stages = list(adapter.feature_stages(images))
        if adapter.kind == GENERATIVE and self.llm_layers:
            n_layers = len(adapter.lm_layers())
            chosen = sorted({max(1, n_layers // 2) if which == "middle" else n_layers for which in self.llm_layers})
            stages += adapter.image_token_states(images, chosen)
        return stages

    def _whatsup(self, adapter: Adapter, example: ProbeExample, pair_image: Any) -> dict[str, Any] | None:
        """Image-caption similarity for the true relation vs the same words with the objects swapped."""
        pair = example.inputs["pair"]
        if pair is None:
            return None
        reference, other = pair.objects[-1], pair.objects[0]
        relations = relations_between(reference, other)
        if not relations:
            return None
        relation = relations[0]
        texts = [f"a {reference.name} {relation} a {other.name}", f"a {other.name} {relation} a {reference.name}"]
        sims = adapter.similarity([pair_image], texts).float().cpu().numpy()[0]
        return {"relation": relation, "captions": texts, "true": float(sims[0]), "swapped": float(sims[1])}

    def aggregate(self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]) -> ProbeResult:
        stages = records[0]["stages"] if records else []
        result = SpatialResult(
            probe=self.name, n_examples=len(records), n_failed=0, metrics={}, stages=stages,
            tasks=[*CLASSIFICATION, *REGRESSION],
            readout=(f"primary: salience-attention pooled tokens -> linear probe; also flattened tokens -> PCA <= {PCA_BUDGET}; "
                     f"tokens first projected to {TOKEN_DIMS} dims (seeded); {FOLDS}-fold CV, out-of-fold scores, "
                     "bootstrap CI over scenes"),
        )
        if len(records) < self.min_scenes:
            result.notes.append(f"only {len(records)} scenes (< {self.min_scenes}): too few for stable probes, raise --n-scenes")
        if not stages:
            return result
        has_untrained = "untrained:" + stages[0] in arrays[0]
        for readout in READOUTS:
            table: dict[str, dict[str, Any]] = {}
            for stage in stages:
                table[stage] = {task: self._task(arrays, records, stage, task, readout) for task in result.tasks}
                if has_untrained:
                    for task in result.tasks:
                        table[stage][task]["untrained"] = self._task(arrays, records, "untrained:" + stage, task, readout)["score"]
            _derive(table, stages[0])
            result.readouts[readout] = table
        result.scores = result.readouts[READOUTS[0]]
        pre = np.stack([a[SIMILARITY + stages[0]] for a in arrays])
        for stage in stages[1:]:
            post = np.stack([a[SIMILARITY + stage] for a in arrays])
            result.similarity[stage] = {"cka": asdict(cka_with_null(pre, post, self.seed)),
                                        "knn_overlap": asdict(knn_overlap_with_null(pre, post, seed=self.seed))}
            result.cka[stage] = result.similarity[stage]["cka"]["value"]
            result.knn_overlap[stage] = result.similarity[stage]["knn_overlap"]["value"]
        post_stage = "projector" if "projector" in stages else stages[-1]
        result.metrics = self._metrics(result, stages[0], post_stage)
        if adapter.kind == DUAL_ENCODER:
            result.whatsup, result.metrics["whatsup_accuracy"] = _whatsup_summary(records, self.seed)
        return result

    def _task(self, arrays: list[dict[str, np.ndarray]], records: list[dict[str, Any]], stage: str, task: str,
              readout: str) -> dict[str, Any]:
        key = stage + PAIR if task in RELATION_TASKS else stage
        rows = [(a[key], r["labels"][task]) for a, r in zip(arrays, records) if r["labels"].get(task) is not None]
        if not rows:
            return {"score": None, "ci_low": None, "ci_high": None, "chance": None, "metric": "accuracy"}
        features = np.stack([f for f, _ in rows])
        return cross_validated(features, [lab for _, lab in rows], task in REGRESSION, readout, self.seed)

    @staticmethod
    def _metrics(result: SpatialResult, pre: str, post: str) -> dict[str, Metric]:
        final = result.scores[post]
        position = [final[t]["retention"] for t in POSITION_TASKS if final[t].get("retention") is not None]
        relation = [final[t]["retention"] for t in RELATION_TASKS if final[t].get("retention") is not None]
        return {
            "position_retention": Metric(float(np.mean(position)) if position else None,
                                         description=f"mean retention of position tasks, {post} vs {pre} (attention readout)"),
            "grid_cell_retention": Metric(final["grid_cell"].get("retention"), description="3x3 cell, (post-chance)/(pre-chance)"),
            "half_retention": Metric(final["half"].get("retention"), description="left/right half"),
            "relation_retention": Metric(float(np.mean(relation)) if relation else None,
                                         description="mean retention of left-of / above between two objects"),
            "colour_retention": Metric(final["colour"].get("retention"), description="control attribute: should stay near 1"),
            "grid_cell_selectivity": Metric(final["grid_cell"].get("selectivity"), description="grid-cell accuracy - control-task accuracy"),
            "projector_cka": _similarity_metric(result.similarity.get(post, {}).get("cka"),
                                                f"debiased linear CKA of the raw tokens, {post} vs {pre}; CI: jackknife "
                                                "over images; null: images of one side permuted"),
            "projector_knn_overlap": _similarity_metric(result.similarity.get(post, {}).get("knn_overlap"),
                                                        f"10-NN overlap of images, {post} vs {pre}; CI: bootstrap over "
                                                        "images; null: k/(n-1)"),
            "untrained_grid_cell_accuracy": Metric(final["grid_cell"].get("untrained"),
                                                   description=f"grid-cell accuracy at {post} of a randomly initialised copy"),
            "projector_grid_cell_above_chance": _above_chance(
                result.readouts.get("flattened", {}).get(post, {}).get("grid_cell", {}),
                f"3x3 grid cell of the object decoded from the {post}'s tokens in order (flattened readout, out-of-fold) "
                "minus its chance level (the majority cell); CI: bootstrap over scenes; null 0"),
        }


def _similarity_metric(stats: dict[str, Any] | None, description: str) -> Metric:
    if stats is None:
        return Metric(None, description=description, undefined="no stage after the vision encoder")
    return Metric(stats["value"], stats["ci_low"], stats["ci_high"], description, null=stats["null"],
                  p_value=stats["p_value"], n=stats["n"], undefined=stats["undefined"])


def _above_chance(stats: dict[str, Any], description: str) -> Metric:
    """A readout's out-of-fold accuracy minus its chance level, with the bootstrap CI shifted alike."""
    score, chance = stats.get("score"), stats.get("chance")
    if score is None or chance is None:
        return Metric(None, description=description)
    low, high = stats.get("ci_low"), stats.get("ci_high")
    return Metric(score - chance, None if low is None else low - chance, None if high is None else high - chance,
                  f"{description}; chance {chance:.3f}")


def _derive(table: dict[str, dict[str, Any]], pre: str) -> None:
    """Retention against the pre-projector stage and selectivity against the control task, in place."""
    for stage, tasks in table.items():
        for task, stats in tasks.items():
            stats["retention"] = _retention(stats, table[pre][task])
            if task in CLASSIFICATION and task != "control":
                control = tasks["control"]["score"]
                stats["selectivity"] = None if stats["score"] is None or control is None else stats["score"] - control


def _retention(stats: dict[str, Any], pre: dict[str, Any]) -> float | None:
    if stats["score"] is None or pre["score"] is None or pre["chance"] is None or stats["chance"] is None:
        return None
    denominator = pre["score"] - pre["chance"]
    if denominator < MIN_DECODABLE:  # nothing decodable before the projector: retention is undefined
        return None
    return float((stats["score"] - stats["chance"]) / denominator)


def _labels(example: ProbeExample, seed: int) -> dict[str, Any]:
    obj = example.scene.objects[0]
    row, col = obj.grid_cell(3, 3)
    labels: dict[str, Any] = {
        "colour": obj.colour, "shape": obj.shape, "half": "left" if obj.cx < 0.5 else "right",
        "grid_cell": f"{row},{col}", "control": _control_label(obj.name, seed), "centre_x": obj.cx, "centre_y": obj.cy,
        "left_of": None, "above": None,
    }
    pair = example.inputs["pair"]
    if pair is not None:
        reference, other = pair.objects[-1], pair.objects[0]
        relations = relations_between(reference, other)
        if "left of" in relations or "right of" in relations:
            labels["left_of"] = "yes" if "left of" in relations else "no"
        if "above" in relations or "below" in relations:
            labels["above"] = "yes" if "above" in relations else "no"
    return labels


def _pair_scene(scene: Scene, seed: int, index: int) -> Scene | None:
    """The scene with the reference object inserted at a seeded free place, on a seeded side of the object
    horizontally and vertically (left-of and above near-balanced: a side that does not fit falls back to anywhere)."""
    name = REFERENCE[1] if scene.has(REFERENCE[0]) else REFERENCE[0]
    colour, shape = name.split()
    obj = scene.objects[0]
    rng = np.random.default_rng([seed, index, 23])
    want_left, want_above = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    low, high, gap = 0.12, 0.88, 0.2
    x_range = (low, obj.cx - gap) if want_left else (obj.cx + gap, high)
    y_range = (low, obj.cy - gap) if want_above else (obj.cy + gap, high)
    ranges = [(x_range if x_range[0] < x_range[1] else (low, high), y_range if y_range[0] < y_range[1] else (low, high))]
    ranges.append(((low, high), (low, high)))
    for xr, yr in ranges:
        for _ in range(20):
            at = (float(rng.uniform(*xr)), float(rng.uniform(*yr)))
            try:
                return insert_object(scene, colour, shape, "small", at=at)
            except EditError:
                continue
    return None


def _control_label(object_type: str, seed: int) -> str:
    """A fixed random grid cell per object type (the Hewitt & Liang control task)."""
    rng = np.random.default_rng([seed, 99])
    cells = rng.integers(0, 9, size=len(OBJECT_TYPES))
    cell = int(cells[OBJECT_TYPES.index(object_type)])
    return f"{cell // 3},{cell % 3}"


def _whatsup_summary(records: list[dict[str, Any]], seed: int) -> tuple[dict[str, Any], Metric]:
    rows = [r["whatsup"] for r in records if r.get("whatsup")]
    hits = np.array([float(w["true"] > w["swapped"]) for w in rows])
    if len(hits) == 0:
        return {}, Metric(None, description="What'sUp: true relation caption beats the swapped one (chance 0.5)")
    low, high = bootstrap_ci(hits, seed=seed)
    by_relation = {rel: float(np.mean([h for h, w in zip(hits, rows) if w["relation"] == rel]))
                   for rel in sorted({w["relation"] for w in rows})}
    return ({"n": len(hits), "accuracy": float(hits.mean()), "by_relation": by_relation},
            Metric(float(hits.mean()), low, high, "What'sUp: true relation caption beats the swapped one (chance 0.5)"))
