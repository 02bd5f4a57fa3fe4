"""Spatial-relation information through the projector: linear probes per feature stage.

Stages: the vision encoder's patches (pre-projector), every stage the adapter exposes after it (BLIP-2:
Q-Former output and language projection; LLaVA: the projector), and the LLM's hidden states at the image
positions after a middle and the last layer (generative models). Each example is one single-object scene
(exact labels) plus a two-object twin: the scene with a reference object inserted.

Tasks: ``colour``, ``shape`` (controls that should survive everywhere), ``half`` (left/right), ``grid_cell``
(3x3), ``centre_x``/``centre_y`` (R²), ``left_of``/``above`` (is the reference object left of / above the
other — identities fixed by construction, sides drawn by a seeded coin so classes are near-balanced; chance is
reported), and ``control`` (Hewitt & Liang 2019: the
grid-cell labels replaced by a fixed random cell per object type). Selectivity = accuracy - control accuracy.

Readouts (see :mod:`mmdiag.probes.spatial.readouts`): an attention-pooled per-token probe and a flattened
PCA probe, the same at every stage. Chance is a label-permutation null run through the same cross-validation
(before and after the projector, primary readout). Every stage is compared with the vision encoder as a paired
difference (bootstrap over scenes, CI and p-value); retention = (stage - chance) / (pre - chance) is reported only
where the pre-projector score beats its null (p < 0.05), else "not measurable" with the reason. The same probes run
on a randomly initialised copy of the model (the untrained baseline). Also: debiased linear CKA and 10-NN overlap
(raw tokens, with CIs and nulls; :mod:`mmdiag.metrics.similarity`) of every stage against the vision encoder.
CLIP (no projector into an LLM): patch tokens vs the pooled embedding, plus a What'sUp-style test — does
"a A left of a B" beat "a B left of a A" (chance 0.5).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.memory import release_freed_memory
from mmdiag.metrics.similarity import centred_gram, cka_of_grams, knn_of_grams
from mmdiag.metrics.stats import bootstrap_ci, over_draw_blocks, resample_indices
from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.example_arrays import ExampleArrays, example_arrays
from mmdiag.probes.sections import Figure, Finding, ReportSection
from mmdiag.probes.spatial.heads import fit_predict
from mmdiag.probes.spatial.readouts import (
    FOLDS,
    PCA_BUDGET,
    READOUTS,
    TOKEN_DIMS,
    FoldPlan,
    OutOfFold,
    plan_out_of_fold,
    project_tokens,
    score_of,
    scores_of_draws,
    similarity_features,
    summarise,
)
from mmdiag.probes.spatial.specs import METRIC_SPECS
from mmdiag.sources.contract import DataRequest, Dataset, EditUnavailable, Example

CLASSIFICATION = ("colour", "shape", "half", "grid_cell", "left_of", "above", "control")
REGRESSION = ("centre_x", "centre_y")
POSITION_TASKS = ("half", "grid_cell", "centre_x", "centre_y")
RELATION_TASKS = ("left_of", "above")
REFERENCE = ("red circle", "blue square")  # the inserted object (the second when the scene holds the first); a
# source whose vocabulary lacks them inserts its first two object names
PAIR = "@pair"
MAX_FIT_THREADS = 8  # threads for the readouts' fits (at most the machine's cores)
FIT_SHARES = 4  # the heads are fitted in this many shares (on up to as many threads)
ROUND_BYTES = 32 * 2**20  # the feature columns held at once, about (see _rounds)
SIMILARITY = "similarity:"  # raw-token features of a stage, for CKA and kNN overlap


@dataclass
class SpatialResult(ProbeResult):
    """Readout x stage x task scores with CIs, chance, retention, selectivity and the untrained baseline."""

    stages: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    readout: str = ""
    scores: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )  # primary readout: stage -> task -> stats
    readouts: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)  # readout -> stage -> task
    cka: dict[str, float | None] = field(default_factory=dict)  # stage -> CKA with the vision encoder
    knn_overlap: dict[str, float | None] = field(default_factory=dict)
    similarity: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> CKA and kNN with CI and null
    whatsup: dict[str, Any] = field(default_factory=dict)
    # metric -> example id -> out-of-fold hit (0/1) minus the readout's chance: the per-scene form of the
    # above-chance metrics, whose mean is the headline value (mmdiag compare pairs two runs on it)
    paired_hits: dict[str, dict[str, float]] = field(default_factory=dict)


ABOVE_CHANCE_READOUTS = {
    "projector_grid_cell_above_chance": "flattened",
    "projector_grid_cell_in_content_above_chance": "attention",
}


class SpatialProbe(Probe):
    """Linear decodability of object identity, position and pairwise relations, stage by stage."""

    name = "spatial"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_specs = METRIC_SPECS  # every headline metric, defined once

    def __init__(
        self,
        resolution: int = 64,
        seed: int = 0,
        min_scenes: int = 40,
        untrained_baseline: bool = True,
        llm_layers: tuple[str, ...] = ("middle", "last"),
        null_permutations: int = 39,
    ) -> None:
        self.null_permutations = null_permutations  # label permutations behind each chance level (39: p down to 0.025)
        self.resolution = resolution
        self.seed = seed
        self.min_scenes = min_scenes
        self.untrained_baseline = untrained_baseline
        self.llm_layers = llm_layers
        self._untrained: Adapter | None = None

    def setup(self, adapter: Adapter) -> None:
        self._untrained = adapter.untrained_copy(self.seed) if self.untrained_baseline else None

    def unusable_data(self, source: Any) -> str | None:
        if not getattr(source, "positions", True):
            return (
                f"the {source.name} data source gives no object positions, and every spatial task decodes one "
                "(use coco:DIR or the synthetic scenes)"
            )
        return None

    def data_request(self) -> DataRequest:
        """Position labels need exactly one object per example (the pair twin is built from it)."""
        return DataRequest(min_objects=1, max_objects=1)

    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        vocabulary = data.source.vocabulary()
        reference = REFERENCE if all(r in vocabulary for r in REFERENCE) else tuple(vocabulary[:2])
        can_insert = "insert" in data.source.edits and len(reference) == 2
        out = []
        for index, scene in enumerate(data):
            if len(scene.objects) != 1:
                continue
            pair = _pair_scene(scene, self.seed, index, reference) if can_insert else None
            control = _control_label(scene.objects[0].name, self.seed, vocabulary)
            out.append(ProbeExample(f"{scene.example_id}/spatial", scene, {"pair": pair, "control": control}))
        return out

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Stage features of every example's scene and pair twin, from the model and its untrained copy."""
        images = [ex.example.image(self.resolution) for ex in examples]
        pairs = [
            ex.inputs["pair"].image(self.resolution) if ex.inputs["pair"] is not None else images[i]
            for i, ex in enumerate(examples)
        ]
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
        return [
            ExampleOutput(
                {
                    "labels": _labels(ex, self.seed),
                    "stages": stage_names,
                    "tokens": tokens,
                    **({"whatsup": self._whatsup(adapter, ex, pairs[i])} if adapter.kind == DUAL_ENCODER else {}),
                },
                arrays[i],
            )
            for i, ex in enumerate(examples)
        ]

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
        relations = pair.relations_between(reference, other)
        if not relations:
            return None
        relation = relations[0]
        texts = [f"a {reference.name} {relation} a {other.name}", f"a {other.name} {relation} a {reference.name}"]
        sims = adapter.similarity([pair_image], texts).float().cpu().numpy()[0]
        return {"relation": relation, "captions": texts, "true": float(sims[0]), "swapped": float(sims[1])}

    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        stages = records[0]["stages"] if records else []
        result = SpatialResult(
            probe=self.name,
            n_examples=len(records),
            n_failed=0,
            metrics={},
            stages=stages,
            tasks=[*CLASSIFICATION, *REGRESSION],
            readout=(
                f"primary: salience-attention pooled tokens -> linear probe; also flattened tokens -> PCA <= "
                f"{PCA_BUDGET}; "
                f"tokens first projected to {TOKEN_DIMS} dims (seeded); {FOLDS}-fold CV, out-of-fold scores, "
                "bootstrap CI over scenes"
            ),
        )
        if len(records) < self.min_scenes:
            result.notes.append(
                f"only {len(records)} scenes (< {self.min_scenes}): too few for stable probes, raise --n-examples"
            )
        if not stages:
            return result
        columns = example_arrays(arrays)
        has_untrained = "untrained:" + stages[0] in columns.array_names()
        post_stage = "projector" if "projector" in stages else stages[-1]
        fits = self._fit_all(columns, records, stages, post_stage, result.tasks, has_untrained)
        for readout in READOUTS:
            table: dict[str, dict[str, Any]] = {}
            predictions: dict[tuple[str, str], OutOfFold | None] = {}
            for stage in stages:
                table[stage] = {}
                for task in result.tasks:
                    predictions[stage, task] = fits[readout, stage, task]
                    table[stage][task] = summarise(predictions[stage, task], task in REGRESSION, self.seed)
                if has_untrained:
                    for task in result.tasks:
                        untrained = fits[readout, "untrained:" + stage, task]
                        table[stage][task]["untrained"] = (
                            None if untrained is None else score_of(untrained.y, untrained.pred, task in REGRESSION)
                        )
            retention_draws = _derive(table, predictions, stages[0], self.seed)
            if readout == READOUTS[0]:
                primary_draws = {task: d for (stage, task), d in retention_draws.items() if stage == post_stage}
            result.readouts[readout] = table
        result.scores = result.readouts[READOUTS[0]]
        pre = centred_gram(columns.column(SIMILARITY + stages[0]))  # each stage's tokens read once, as a Gram matrix
        for stage in stages[1:]:
            post = centred_gram(columns.column(SIMILARITY + stage))
            knn = knn_of_grams(pre, post, seed=self.seed)
            result.similarity[stage] = {
                "cka": asdict(cka_of_grams(pre.copy(), post, self.seed)),  # zeroes the diagonals it is given
                "knn_overlap": asdict(knn),
            }
            result.cka[stage] = result.similarity[stage]["cka"]["value"]
            result.knn_overlap[stage] = result.similarity[stage]["knn_overlap"]["value"]
        result.metrics = self._metrics(result, stages[0], post_stage, primary_draws)
        result.paired_hits = _paired_hits(result, fits, records, post_stage)
        if adapter.kind == DUAL_ENCODER:
            result.whatsup, result.metrics["whatsup_accuracy"] = _whatsup_summary(records, self.seed)
        return result

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection | None:
        from mmdiag.probes.spatial.report import section

        return section(result, records)

    @classmethod
    def finding(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> Finding | None:
        from mmdiag.probes.spatial.finding import finding

        return finding(result, records)

    @classmethod
    def compare_figure(cls, results: dict[str, dict[str, Any]]) -> Figure | None:
        from mmdiag.probes.spatial.report import compare_figure

        return compare_figure(results)

    @classmethod
    def paired_values_of_result(cls, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The above-chance metrics per scene (out-of-fold hit minus chance), from ``paired_hits``."""
        return dict(result.get("paired_hits") or {})

    def _fit_all(
        self,
        columns: ExampleArrays,
        records: list[dict[str, Any]],
        stages: list[str],
        post_stage: str,
        tasks: list[str],
        has_untrained: bool,
    ) -> dict[tuple[str, str, str], OutOfFold | None]:
        """Every readout's out-of-fold predictions, by (readout, stage, task), ``untrained:`` stages included.

        The jobs go in rounds of a few feature columns (:func:`_rounds`: every job of the release suite in one
        round; at 1,600 scenes a few columns at a time, so the tokens held do not grow with the scenes). In a
        round each readout's cross-validation is planned (folds and labels only), then every head of the round is
        fitted in a few batched calls on a pool of threads (thousands of small problems: one Newton solve per
        iteration for many of them), each fold's features computed when its heads are fitted and dropped after
        (:class:`~mmdiag.probes.spatial.readouts.FoldFeatures`), then each readout's predictions are put back
        together. No head's result depends on the rounds, the batches or the threads."""
        jobs: list[tuple[str, str, str, int]] = []
        for readout in READOUTS:
            for stage in stages:
                for task in tasks:
                    # the permutation null where retention is read: the primary readout, before and after the
                    # projector; not the control task, which is read only through selectivity (no chance needed)
                    null = readout == READOUTS[0] and stage in (stages[0], post_stage) and task != "control"
                    jobs.append((readout, stage, task, self.null_permutations if null else 0))
                    if has_untrained:
                        jobs.append((readout, "untrained:" + stage, task, 0))
        keys = list(dict.fromkeys(_column_key(job) for job in jobs))
        jobs.sort(key=lambda job: keys.index(_column_key(job)))  # stable: jobs reading the same column together
        labelled = {task: _labelled(records, task) for task in tasks}
        workers = min(len(jobs), os.cpu_count() or 1, MAX_FIT_THREADS)
        out: dict[tuple[str, str, str], OutOfFold | None] = {job[:3]: None for job in jobs}
        # the pool's threads are the parallelism: BLAS threads on top of them oversubscribe the cores (at 320 scenes
        # on 2 cores the fits took 60 s with 2 BLAS threads per fit thread, 16 s with 1; the same results)
        with ThreadPoolExecutor(max_workers=workers) as pool, threadpool_limits(limits=1, user_api="blas"):
            for round_jobs in _rounds(jobs, {key: columns.column_nbytes(key) for key in keys}):
                loaded = {key: columns.column(key) for key in dict.fromkeys(map(_column_key, round_jobs))}

                plans = list(pool.map(functools.partial(self._plan, loaded, labelled), round_jobs))
                for regression in (False, True):
                    mine = [
                        (job, p) for job, p in zip(round_jobs, plans) if p is not None and p.regression == regression
                    ]
                    predicted = iter(
                        _fit_shares([problem for _, p in mine for problem in p.problems], regression, pool)
                    )
                    for job, p in mine:
                        out[job[:3]] = p.finish([next(predicted) for _ in p.problems])
                del loaded, plans
                release_freed_memory()  # each round's peak is not kept under the next one's
        return out

    def _plan(
        self,
        loaded: dict[str, np.ndarray],
        labelled: dict[str, tuple[np.ndarray, list[Any]]],
        job: tuple[str, str, str, int],
    ) -> FoldPlan | None:
        readout, _, task, permutations = job
        rows, labels = labelled[task]
        if not len(rows):
            return None
        tokens = loaded[_column_key(job)]
        all_rows = len(rows) == len(tokens)
        return plan_out_of_fold(
            tokens, labels, task in REGRESSION, readout, self.seed, permutations, rows=None if all_rows else rows
        )

    @staticmethod
    def _metrics(result: SpatialResult, pre: str, post: str, draws: dict[str, np.ndarray]) -> dict[str, Metric]:
        final = result.scores[post]
        return {
            "position_retention": _mean_retention(
                final, POSITION_TASKS, f"mean retention of the position tasks, {post} vs {pre}", draws
            ),
            "grid_cell_retention": _retention_metric(final["grid_cell"], f"3x3 cell, {post} vs {pre}"),
            "half_retention": _retention_metric(final["half"], f"left/right half, {post} vs {pre}"),
            "relation_retention": _mean_retention(
                final, RELATION_TASKS, "mean retention of left-of / above between two objects", draws
            ),
            "colour_retention": _retention_metric(final["colour"], "control attribute: should stay near 1"),
            "grid_cell_selectivity": Metric(
                final["grid_cell"].get("selectivity"),
                *final["grid_cell"].get("selectivity_ci", [None, None]),
                description="grid-cell accuracy - control-task accuracy (Hewitt & Liang 2019), "
                "paired bootstrap CI over scenes; null 0",
                null=0.0,
                p_value=final["grid_cell"].get("selectivity_p"),
                n=final["grid_cell"].get("n"),
                undefined=_why_missing(final["grid_cell"], "selectivity"),
            ),
            "projector_cka": _similarity_metric(
                result.similarity.get(post, {}).get("cka"),
                f"debiased linear CKA of the raw tokens, {post} vs {pre}; CI: jackknife "
                "over images; null: images of one side permuted",
            ),
            "projector_knn_overlap": _similarity_metric(
                result.similarity.get(post, {}).get("knn_overlap"),
                f"10-NN overlap of images, {post} vs {pre}; CI: bootstrap over images; null: k/(n-1)",
            ),
            "untrained_grid_cell_accuracy": Metric(
                final["grid_cell"].get("untrained"),
                description=f"grid-cell accuracy at {post} of a randomly initialised copy",
                undefined=None
                if final["grid_cell"].get("untrained") is not None
                else _why_missing(final["grid_cell"], "score")
                or "no untrained copy was measured (untrained_baseline: false)",
            ),
            "projector_grid_cell_above_chance": _above_chance(
                result.readouts.get("flattened", {}).get(post, {}).get("grid_cell", {}),
                f"3x3 grid cell of the object decoded from the {post}'s tokens in order (flattened readout, "
                f"out-of-fold) "
                "minus its chance level (the majority cell); CI: bootstrap over scenes; null 0",
            ),
            # the order-free readout: what the tokens' content says about where the object is. Token order alone
            # gives the flattened readout the position even when the vision tower has no position information
            # (a position-less tower): this one is at chance then; shuffled tokens keep it
            "projector_grid_cell_in_content_above_chance": _above_chance(
                result.readouts.get("attention", {}).get(post, {}).get("grid_cell", {}),
                f"3x3 grid cell of the object decoded from the content of the {post}'s tokens, whatever their order "
                "(salience-attention pooled readout, out-of-fold) minus its chance level (the majority cell); CI: "
                "bootstrap over scenes; null 0",
            ),
        }


def _column_key(job: tuple[str, str, str, int]) -> str:
    """The feature column a job reads: the stage's tokens, or its pair twin's for the relation tasks."""
    _, stage, task, _ = job
    return stage + PAIR if task in RELATION_TASKS else stage


def _labelled(records: list[dict[str, Any]], task: str) -> tuple[np.ndarray, list[Any]]:
    """The rows with a label for ``task`` and their labels."""
    rows = [i for i, r in enumerate(records) if r["labels"].get(task) is not None]
    return np.array(rows, dtype=np.int64), [records[i]["labels"][task] for i in rows]


def _rounds(jobs: list[tuple[str, str, str, int]], sizes: dict[str, int]) -> list[list[tuple[str, str, str, int]]]:
    """Jobs cut, in order, into rounds whose feature columns (``sizes``: bytes per column) stay under
    ``ROUND_BYTES`` together (a round always takes at least one column): one round at the release suite's size, a
    few columns at a time at 1,600 scenes. The rounds depend on the jobs and the scene count only."""
    rounds: list[list[tuple[str, str, str, int]]] = [[]]
    held: set[str] = set()
    for job in jobs:
        key = _column_key(job)
        if key not in held and held and sum(sizes[k] for k in held) + sizes[key] > ROUND_BYTES:
            rounds.append([])
            held = set()
        held.add(key)
        rounds[-1].append(job)
    return rounds


def _fit_shares(problems: list[Any], regression: bool, pool: ThreadPoolExecutor) -> list[np.ndarray]:
    """Every head's test predictions, fitted in ``FIT_SHARES`` shares on ``pool``'s threads. The heads that read
    the same fold's features (``share_key``) go to the same share, so each fold is computed once, on one thread;
    the shares take the folds in turn."""
    slots: dict[Any, int] = {}
    shares: list[list[int]] = [[] for _ in range(FIT_SHARES)]
    for index, problem in enumerate(problems):
        shares[slots.setdefault(problem.share_key, len(slots) % FIT_SHARES)].append(index)
    fitted = list(pool.map(lambda share: fit_predict([problems[i] for i in share], regression), shares))
    merged: list[np.ndarray] = [None] * len(problems)  # type: ignore[list-item]
    for share, values in zip(shares, fitted):
        for index, value in zip(share, values):
            merged[index] = value
    return merged


def _paired_hits(
    result: SpatialResult, fits: dict[tuple[str, str, str], OutOfFold | None], records: list[dict[str, Any]], post: str
) -> dict[str, dict[str, float]]:
    """Per scene, the out-of-fold hit minus chance behind each above-chance metric (see ``paired_hits``)."""
    ids = [r["example_id"] for r in records if r["labels"].get("grid_cell") is not None]
    out = {}
    for metric, readout in ABOVE_CHANCE_READOUTS.items():
        oof = fits.get((readout, post, "grid_cell"))
        chance = result.readouts.get(readout, {}).get(post, {}).get("grid_cell", {}).get("chance")
        if oof is not None and chance is not None and len(oof.y) == len(ids):
            out[metric] = {i: float(hit) - chance for i, hit in zip(ids, oof.pred == oof.y)}
    return out


def _similarity_metric(stats: dict[str, Any] | None, description: str) -> Metric:
    if stats is None:
        return Metric(None, description=description, undefined="no stage after the vision encoder")
    return Metric(
        stats["value"],
        stats["ci_low"],
        stats["ci_high"],
        description,
        null=stats["null"],
        p_value=stats["p_value"],
        n=stats["n"],
        undefined=stats["undefined"],
    )


def _why_missing(stats: dict[str, Any], key: str) -> str | None:
    """Why ``stats[key]`` is missing (the task's own reason where it has one), or None when it is there."""
    if stats.get(key) is not None:
        return None
    return stats.get("undefined") or (
        "no scenes were scored for this task"
        if not stats
        else "the task could not be scored on these scenes (too few per class)"
    )


def _above_chance(stats: dict[str, Any], description: str) -> Metric:
    """A readout's out-of-fold accuracy minus its chance level, with the bootstrap CI shifted alike."""
    score, chance = stats.get("score"), stats.get("chance")
    if score is None or chance is None:
        return Metric(None, description=description, undefined=_why_missing(stats, "score"))
    low, high = stats.get("ci_low"), stats.get("ci_high")
    return Metric(
        score - chance,
        None if low is None else low - chance,
        None if high is None else high - chance,
        f"{description}; chance {chance:.3f}",
        null=0.0,
        n=stats.get("n"),
    )


RETENTION_ALPHA = 0.05
RETENTION_BOOT = 2000


def _derive(
    table: dict[str, dict[str, Any]], predictions: dict[tuple[str, str], OutOfFold | None], pre: str, seed: int
) -> dict[tuple[str, str], np.ndarray]:
    """Per stage and task, in place: the paired difference to the pre-projector stage (bootstrap over scenes,
    CI and p-value), retention where the pre-projector score beats its null (else the reason), selectivity.
    Returns each (stage, task)'s retention bootstrap draws (NaN where a draw is not measurable); every task draws
    the same scene indices, so draws of tasks on the same scenes can be combined (:func:`_mean_retention`)."""
    draws: dict[tuple[str, str], np.ndarray] = {}
    for stage, tasks in table.items():
        for task, stats in tasks.items():
            if stage != pre:
                paired, retention_draws = _paired(
                    predictions[pre, task], predictions[stage, task], table[pre][task], stats, seed
                )
                stats.update(paired)
                if retention_draws is not None:
                    draws[stage, task] = retention_draws
            if task in CLASSIFICATION and task != "control":
                control = tasks["control"]["score"]
                stats["selectivity"] = None if stats["score"] is None or control is None else stats["score"] - control
                if task == "grid_cell":  # the headline selectivity: with its paired CI
                    stats.update(_selectivity(predictions[stage, task], predictions[stage, "control"], seed))
    return draws


def _measurable(pre: dict[str, Any]) -> str | None:
    """Why retention against this pre-projector row cannot be measured, or None."""
    if pre["score"] is None:
        return f"no pre-projector score ({pre.get('undefined')})"
    if pre.get("null_p") is not None:
        if pre["null_p"] >= RETENTION_ALPHA:
            return (
                f"the pre-projector score {pre['score']:.3f} does not beat its permutation null {pre['chance']:.3f} "
                f"(p = {pre['null_p']:.3f}): nothing decodable to retain"
            )
        return None
    if pre["ci_low"] is None or pre["ci_low"] <= pre["chance"]:
        return f"the pre-projector score's CI reaches its chance level {pre['chance']:.3f}: nothing decodable to retain"
    return None


def _paired(
    before: OutOfFold | None, after: OutOfFold | None, pre: dict[str, Any], post: dict[str, Any], seed: int
) -> tuple[dict[str, Any], np.ndarray | None]:
    """post - pre on the same scenes (paired bootstrap CI, two-sided bootstrap p-value), and retention
    (post - chance) / (pre - chance) with its paired bootstrap CI where the pre-projector score is measurable;
    with the retention's bootstrap draws (NaN where a draw's pre-projector score is at chance), or None."""
    out: dict[str, Any] = {
        "difference": None,
        "difference_ci": [None, None],
        "difference_p": None,
        "retention": None,
        "retention_ci": [None, None],
        "retention_undefined": None,
    }
    if before is None or after is None or len(before.y) != len(after.y) or not np.array_equal(before.y, after.y):
        out["retention_undefined"] = post.get("undefined") or pre.get("undefined") or "no paired scores"
        return out, None
    regression = before.regression
    draws = resample_indices(seed + 104729, len(before.y), RETENTION_BOOT)
    pre_boot = scores_of_draws(before.y, before.pred, regression, draws)
    post_boot = scores_of_draws(after.y, after.pred, regression, draws)
    diff = post_boot - pre_boot
    diff = diff[np.isfinite(diff)]
    out["difference"] = post["score"] - pre["score"]
    out["difference_ci"] = [float(q) for q in np.quantile(diff, [0.025, 0.975])]
    out["difference_p"] = _bootstrap_p(diff)
    reason = _measurable(pre)
    if reason:
        out["retention_undefined"] = reason
        return out, None
    chance_pre = pre["chance"]
    chance_post = post["chance"] if post.get("null_p") is not None else chance_pre
    out["retention"] = float((post["score"] - chance_post) / (pre["score"] - chance_pre))
    with np.errstate(divide="ignore", invalid="ignore"):
        all_draws = np.where(pre_boot - chance_pre > 0, (post_boot - chance_post) / (pre_boot - chance_pre), np.nan)
    all_draws[~np.isfinite(all_draws)] = np.nan
    ratio = all_draws[np.isfinite(all_draws)]
    out["retention_ci"] = [float(q) for q in np.quantile(ratio, [0.025, 0.975])] if len(ratio) else [None, None]
    return out, all_draws


def _bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 0 for a statistic's bootstrap draws, never below 1 / (1 + draws)."""
    tail = min(int(np.sum(draws <= 0)), int(np.sum(draws >= 0)))
    return float(min(1.0, 2 * (1 + tail) / (1 + len(draws))))


def _selectivity(task: OutOfFold | None, control: OutOfFold | None, seed: int) -> dict[str, Any]:
    """Accuracy on the task - on the control task (Hewitt & Liang 2019), paired over the same scenes."""
    if task is None or control is None or len(task.y) != len(control.y):
        return {"selectivity_ci": [None, None], "selectivity_p": None}
    hits = (task.pred == task.y).astype(float) - (control.pred == control.y).astype(float)
    picks = resample_indices(seed + 130363, len(hits), RETENTION_BOOT)
    draws = over_draw_blocks(picks, lambda rows: hits[rows].mean(axis=1), len(hits))
    return {
        "selectivity_ci": [float(q) for q in np.quantile(draws, [0.025, 0.975])],
        "selectivity_p": _bootstrap_p(draws),
    }


def _retention_metric(stats: dict[str, Any], description: str) -> Metric:
    low, high = stats.get("retention_ci", [None, None])
    return Metric(
        stats.get("retention"),
        low,
        high,
        f"{description}: (post - chance) / (pre - chance), chance = the label-permutation null; CI: paired "
        "bootstrap over scenes; null 1 = nothing lost, p-value: paired test of post - pre",
        null=1.0,
        p_value=stats.get("difference_p"),
        n=stats.get("n"),
        undefined=stats.get("retention_undefined"),
    )


def _mean_retention(
    final: dict[str, dict[str, Any]], tasks: tuple[str, ...], description: str, draws: dict[str, np.ndarray]
) -> Metric:
    """Mean retention over the measurable ``tasks``, its CI from the same bootstrap draws of scenes for every task
    (a joint CI: a draw where any task is not measurable is left out) and a bootstrap p-value against 1."""
    kept = [t for t in tasks if final[t].get("retention") is not None]
    left = {t: final[t].get("retention_undefined") or "undefined" for t in tasks if t not in kept}
    note = "; not measurable: " + "; ".join(f"{t}: {why}" for t, why in left.items()) if left else ""
    if not kept:
        return Metric(None, description=description, undefined="no task measurable" + note, null=1.0)
    value = float(np.mean([final[t]["retention"] for t in kept]))
    ns = {final[t].get("n") for t in kept}
    low = high = p_value = None
    if len(ns) == 1 and all(t in draws for t in kept):
        joint = np.mean(np.stack([draws[t] for t in kept]), axis=0)
        joint = joint[np.isfinite(joint)]
        if len(joint):
            low, high = (float(q) for q in np.quantile(joint, [0.025, 0.975]))
            p_value = _bootstrap_p(joint - 1.0)
    else:
        note += "; no joint CI: the tasks were scored on different scenes"
    return Metric(
        value,
        low,
        high,
        description=f"{description} over {', '.join(kept)}{note}; CI: the same "
        "bootstrap draws of scenes for every task; p-value: against 1 (nothing lost)",
        null=1.0,
        p_value=p_value,
        n=ns.pop() if len(ns) == 1 else None,
    )


def _labels(example: ProbeExample, seed: int) -> dict[str, Any]:
    obj = example.example.objects[0]
    row, col = obj.grid_cell(3, 3)
    attributes = obj.attributes  # a source without colour/shape leaves those tasks unlabelled (undefined, said why)
    labels: dict[str, Any] = {
        "colour": attributes.get("colour"),
        "shape": attributes.get("shape"),
        "half": "left" if obj.cx < 0.5 else "right",
        "grid_cell": f"{row},{col}",
        "control": example.inputs["control"],
        "centre_x": obj.cx,
        "centre_y": obj.cy,
        "left_of": None,
        "above": None,
    }
    pair = example.inputs["pair"]
    if pair is not None:
        reference, other = pair.objects[-1], pair.objects[0]
        relations = pair.relations_between(reference, other)
        if "left of" in relations or "right of" in relations:
            labels["left_of"] = "yes" if "left of" in relations else "no"
        if "above" in relations or "below" in relations:
            labels["above"] = "yes" if "above" in relations else "no"
    return labels


def _pair_scene(scene: Example, seed: int, index: int, reference: tuple[str, ...]) -> Example | None:
    """The example with the reference object inserted at a seeded free place, on a seeded side of the object
    horizontally and vertically (left-of and above near-balanced: a side that does not fit falls back to anywhere)."""
    name = reference[1] if scene.has(reference[0]) else reference[0]
    obj = scene.objects[0]
    rng = np.random.default_rng([seed, index, 23])
    want_left, want_above = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    low, high, gap = 0.12, 0.88, 0.2
    x_range = (low, obj.cx - gap) if want_left else (obj.cx + gap, high)
    y_range = (low, obj.cy - gap) if want_above else (obj.cy + gap, high)
    ranges = [
        (x_range if x_range[0] < x_range[1] else (low, high), y_range if y_range[0] < y_range[1] else (low, high))
    ]
    ranges.append(((low, high), (low, high)))
    for xr, yr in ranges:
        for _ in range(20):
            at = (float(rng.uniform(*xr)), float(rng.uniform(*yr)))
            try:
                return scene.with_object(name, at=at)
            except EditUnavailable:
                continue
    return None


def _control_label(object_type: str, seed: int, vocabulary: list[str]) -> str:
    """A fixed random grid cell per object type of the source's vocabulary (the Hewitt & Liang control task)."""
    rng = np.random.default_rng([seed, 99])
    cells = rng.integers(0, 9, size=len(vocabulary))
    cell = int(cells[vocabulary.index(object_type)])
    return f"{cell // 3},{cell % 3}"


def _whatsup_summary(records: list[dict[str, Any]], seed: int) -> tuple[dict[str, Any], Metric]:
    rows = [r["whatsup"] for r in records if r.get("whatsup")]
    hits = np.array([float(w["true"] > w["swapped"]) for w in rows])
    if len(hits) == 0:
        return {}, Metric(None, description="What'sUp: true relation caption beats the swapped one (chance 0.5)")
    low, high = bootstrap_ci(hits, seed=seed)
    by_relation = {
        rel: float(np.mean([h for h, w in zip(hits, rows) if w["relation"] == rel]))
        for rel in sorted({w["relation"] for w in rows})
    }
    return (
        {"n": len(hits), "accuracy": float(hits.mean()), "by_relation": by_relation},
        Metric(float(hits.mean()), low, high, "What'sUp: true relation caption beats the swapped one (chance 0.5)"),
    )
