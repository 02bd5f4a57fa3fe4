"""Readouts for the spatial probe: the same probe family at every stage, whatever its number of tokens.

Every stage's tokens are first mapped to ``TOKEN_DIMS`` dims by a seeded Gaussian projection (same map for
every stage of the same width), so storage and probe capacity do not grow with the model. Then:

- ``attention``: tokens pooled by salience attention (a softmax over each token's distance from the typical
  token of the training fold, which singles out the object's tokens whatever the token count: 576 patches,
  32 queries, a pooled grid), concatenated with the mean token, then logistic / ridge regression. It reads
  what the *content* of the tokens says about position — not the token index.
- ``flattened``: all tokens flattened, standardised, PCA to at most ``PCA_BUDGET`` components (fitted in
  each training fold), then logistic / ridge regression.

The heads are scikit-learn's ``LogisticRegression()`` (C = 1) and ``Ridge(alpha=1)``, each standardised first
(attention readout), fitted in batches by :mod:`mmdiag.probes.spatial.heads` (the same estimators, solved to
convergence, every fold and permutation of a task at once). Folds are scikit-learn's (``StratifiedKFold`` /
``KFold``, written out in :mod:`mmdiag.probes.spatial.folds`).

Scores come from out-of-fold predictions of ``FOLDS``-fold cross-validation (fixed seeds) with a bootstrap CI
over scenes: accuracy for classification, R² for regression. CKA and kNN overlap between stages are computed
on :func:`similarity_features` (the raw tokens), in :mod:`mmdiag.metrics.similarity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.spatial.folds import kfold, stratified_kfold
from mmdiag.probes.spatial.heads import HeadProblem, fit_predict

TOKEN_DIMS = 16
PCA_BUDGET = 32
FOLDS = 5
READOUTS = ("attention", "flattened")
ATTENTION_SHARPNESS = 4.0  # softmax temperature on distances in units of their spread


def project_tokens(tokens: torch.Tensor, seed: int) -> np.ndarray:
    """[n_tokens, dim] -> [n_tokens, TOKEN_DIMS] through a seeded Gaussian map (one map per width)."""
    dim = tokens.shape[-1]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + dim)
    projection = torch.randn(dim, TOKEN_DIMS, generator=generator) / dim**0.5
    return (tokens.float().cpu() @ projection).numpy().astype(np.float32)


SIMILARITY_BUDGET = 65_536  # values per image kept for CKA / kNN: every token at full width up to this


def similarity_features(tokens: torch.Tensor, seed: int) -> np.ndarray:
    """One image's tokens for CKA and kNN overlap: the raw [n_tokens, dim] tokens (float32) when they hold at
    most ``SIMILARITY_BUDGET`` values (every zoo model), else each token through a seeded Gaussian map to
    ``SIMILARITY_BUDGET // n_tokens`` dims (inner products kept in expectation; the report names which)."""
    n_tokens, dim = tokens.shape[-2], tokens.shape[-1]
    tokens = tokens.float().cpu()
    if n_tokens * dim <= SIMILARITY_BUDGET:
        return tokens.numpy().astype(np.float32)
    width = max(TOKEN_DIMS, SIMILARITY_BUDGET // n_tokens)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + dim + 7)
    projection = torch.randn(dim, width, generator=generator) / width**0.5
    return (tokens @ projection).numpy().astype(np.float32)


@dataclass
class OutOfFold:
    """Out-of-fold predictions of one readout on one stage, and its label-permutation null."""

    y: np.ndarray
    pred: np.ndarray
    regression: bool
    majority: float | None  # share of the most frequent class (classification)
    null_scores: np.ndarray  # the same cross-validation with the labels permuted, one score per permutation


def score_of(y: np.ndarray, pred: np.ndarray, regression: bool) -> float:
    """Accuracy, or R² = 1 - SSE / SST (nan with no variance)."""
    if not regression:
        return float(np.mean(pred == y))
    total = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - pred) ** 2).sum()) / total if total > 0 else float("nan")


def scores_of_draws(y: np.ndarray, pred: np.ndarray, regression: bool, draws: np.ndarray) -> np.ndarray:
    """:func:`score_of` of every bootstrap draw at once (``draws``: [n_draws, n] row indices)."""
    y_draw, pred_draw = y[draws], pred[draws]
    if not regression:
        return (pred_draw == y_draw).mean(axis=1)
    total = ((y_draw - y_draw.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    error = ((y_draw - pred_draw) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1 - error / np.where(total > 0, total, 1.0), np.nan)


def out_of_fold(
    tokens: np.ndarray, labels: Sequence[Any], regression: bool, readout: str, seed: int, permutations: int = 0
) -> OutOfFold | None:
    """``FOLDS``-fold out-of-fold predictions of one readout on [n, T, d] tokens (None when it cannot be fitted),
    plus ``permutations`` scores of the same cross-validation procedure on permuted labels (folds stratified on the
    permuted labels, as they are on the real ones, so the null is that of the procedure, not of one fold split).

    The readouts' features (pooled or PCA tokens) depend on a training fold's tokens only, never on its labels,
    so they are cached per fold and only the head is refitted when a fold recurs. Every head of the call (the real
    labels' folds and every permutation's) is fitted in one batch (:mod:`mmdiag.probes.spatial.heads`); callers
    with many readouts plan them all (:func:`plan_out_of_fold`) and fit every head in one batch.
    """
    plan = plan_out_of_fold(tokens, labels, regression, readout, seed, permutations)
    return None if plan is None else plan.finish(fit_predict(plan.problems, regression))


@dataclass
class FoldPlan:
    """One readout's cross-validation, planned: every head to fit (``problems``, each owned by a target set and
    the test indices it predicts); :meth:`finish` turns their predictions into the :class:`OutOfFold`."""

    y: np.ndarray
    regression: bool
    majority: float | None
    target_sets: list[np.ndarray]  # the real labels, then each permutation's
    fittable: list[bool]
    problems: list[HeadProblem]
    owners: list[tuple[int, np.ndarray]]

    def finish(self, predicted: Sequence[np.ndarray]) -> OutOfFold:
        """The out-of-fold predictions and the permutation null from the heads' test predictions, in order."""
        n = len(self.y)
        predictions = [np.zeros(n) if self.regression else np.zeros(n, dtype=int) for _ in self.target_sets]
        for (which, test), values in zip(self.owners, predicted):
            predictions[which][test] = values
        null = [
            score_of(targets, pred, self.regression)
            for targets, pred, ok in zip(self.target_sets[1:], predictions[1:], self.fittable[1:])
            if ok
        ]
        return OutOfFold(self.y, predictions[0], self.regression, self.majority, np.array(null))


def plan_out_of_fold(
    tokens: np.ndarray, labels: Sequence[Any], regression: bool, readout: str, seed: int, permutations: int = 0
) -> FoldPlan | None:
    """The folds, features and heads of :func:`out_of_fold`, not yet fitted (None when it cannot be fitted)."""
    n = len(labels)
    if n < 2 * FOLDS:
        return None
    if regression:
        y = np.asarray(labels, dtype=float)
        if float(((y - y.mean()) ** 2).sum()) <= 0:
            return None
        majority = None
        stratified = False
    else:
        classes, y = np.unique(np.asarray(labels), return_inverse=True)
        counts = np.bincount(y)
        majority = float(counts.max() / n)
        if len(classes) < 2:
            return None
        stratified = counts.min() >= FOLDS  # a permutation keeps the class counts, so this holds for it too
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    rng = np.random.default_rng(seed + 7919)
    target_sets = [y] + [y[rng.permutation(n)] for _ in range(permutations)]
    problems: list[HeadProblem] = []
    owners: list[tuple[int, np.ndarray]] = []
    fittable = [True] * len(target_sets)
    for which, targets in enumerate(target_sets):
        # the whole cross-validation procedure on these targets: its folds (stratified on them), the fold's
        # features (cached: they depend on the fold's tokens only) and the head
        splits = stratified_kfold(targets, FOLDS, seed) if stratified else kfold(n, FOLDS, seed)
        mine: list[tuple[HeadProblem, tuple[int, np.ndarray]]] = []
        for train, test in splits:
            if not regression and len(np.unique(targets[train])) < 2:
                fittable[which] = False
                break
            key = train.tobytes()
            if key not in cache:
                cache[key] = _readout_features(readout, tokens[train], tokens[test], seed)
            train_f, test_f = cache[key]
            # the flattened readout's features are already standardised tokens through PCA
            mine.append(
                (HeadProblem(train_f, targets[train], test_f, standardise=readout != "flattened"), (which, test))
            )
        if not fittable[0]:
            return None
        if fittable[which]:
            problems += [problem for problem, _ in mine]
            owners += [owner for _, owner in mine]
    return FoldPlan(y, regression, majority, target_sets, fittable, problems, owners)


def summarise(oof: OutOfFold | None, regression: bool, seed: int) -> dict[str, Any]:
    """The table row of one readout on one stage: the out-of-fold score with a bootstrap CI over scenes; ``chance`` is
    the mean of the label-permutation null when the fold plan ran permutations (with ``null_p``, the share of null
    scores at or above the score, (1 + k) / (1 + permutations)), else the majority-class share (classification) or 0
    (R²)."""
    metric = "r2" if regression else "accuracy"
    if oof is None:
        return {
            "score": None,
            "ci_low": None,
            "ci_high": None,
            "chance": None,
            "chance_from": None,
            "null_p": None,
            "n": 0,
            "metric": metric,
            "undefined": "too few scenes with this label, or a single class",
        }
    score = score_of(oof.y, oof.pred, regression)
    if regression:
        low, high = bootstrap_ci(
            np.stack([oof.y, oof.pred], axis=1),
            _r2_of_rows,
            seed=seed,
            of_draws=lambda draws: scores_of_draws(oof.y, oof.pred, True, draws),
        )
    else:
        low, high = bootstrap_ci((oof.pred == oof.y).astype(float), seed=seed)
    row = {"score": score, "ci_low": low, "ci_high": high, "n": len(oof.y), "metric": metric}
    if len(oof.null_scores):
        hits = int(np.sum(oof.null_scores >= score - 1e-12))
        row.update(
            chance=float(oof.null_scores.mean()),
            chance_from=f"label-permutation null ({len(oof.null_scores)} permutations, same cross-validation)",
            null_p=(1 + hits) / (1 + len(oof.null_scores)),
        )
    else:
        row.update(
            chance=0.0 if regression else oof.majority,
            chance_from="R² of the mean prediction" if regression else "majority class",
            null_p=None,
        )
    return row


def _r2_of_rows(rows: np.ndarray) -> float:
    return score_of(rows[:, 0], rows[:, 1], True)


def _readout_features(
    readout: str, train_x: np.ndarray, test_x: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The head's inputs for one fold: fitted on the training fold's tokens alone (no labels)."""
    if readout == "flattened":
        return _flattened_features(train_x, test_x, seed)
    return _attention_features(train_x, test_x)


def _flattened_features(train_x: np.ndarray, test_x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All tokens flattened, standardised, PCA to at most ``PCA_BUDGET`` components (fitted on the fold).

    scikit-learn's ``StandardScaler`` then ``PCA`` (full SVD, which it picks at these shapes) written out in
    float64: the components span the same subspace, and the L2 head on them is invariant to the components'
    signs and to rotations within it, so predictions are the pipeline's at a fraction of its per-call overhead
    (``tests/test_spatial_heads.py`` compares them). ``seed`` is unused: a full SVD is not random.

    With fewer scenes than features (always, here: ~40 scenes x thousands of token features) the SVD is read off
    the scenes' Gram matrix: for centred ``A = U S Vᵀ``, ``A Aᵀ = U S² Uᵀ``, so the training projections are
    ``U S`` and a test row ``b`` projects to ``b Aᵀ U / S``: an [n, n] eigenproblem instead of an [n, D] SVD.
    Components with no variance (``S`` ~ 0: constant tokens) project to 0, where an SVD would pick an arbitrary
    direction in the empty part of the space.
    """
    flat_train = train_x.reshape(len(train_x), -1).astype(np.float64)
    flat_test = test_x.reshape(len(test_x), -1).astype(np.float64)
    components = max(1, min(PCA_BUDGET, len(train_x) - 1, flat_train.shape[1]))
    mean = flat_train.mean(axis=0)
    scale = flat_train.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    train_s, test_s = (flat_train - mean) / scale, (flat_test - mean) / scale
    centred = train_s - train_s.mean(axis=0)
    if centred.shape[0] >= centred.shape[1]:  # more scenes than features: the plain SVD is the small problem
        basis = np.linalg.svd(centred, full_matrices=False)[2][:components].T
        return centred @ basis, (test_s - train_s.mean(axis=0)) @ basis
    eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)  # ascending
    order = np.argsort(eigenvalues)[::-1][:components]
    singular = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    left = vectors[:, order]
    alive = singular > singular.max(initial=0.0) * 1e-7 if singular.size else singular.astype(bool)
    inverse = np.where(alive, 1.0 / np.where(alive, singular, 1.0), 0.0)
    train_f = left * np.where(alive, singular, 0.0)
    test_f = ((test_s - train_s.mean(axis=0)) @ centred.T) @ left * inverse
    return train_f, test_f


def _attention_features(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Salience-attention pooling: tokens pooled by a softmax over their distance from the typical
    (training-fold mean) token, so the pool attends to the object's tokens whatever the token count; the
    pooled token and the mean token feed the head."""
    centre = train_x.reshape(-1, train_x.shape[-1]).mean(0)
    scale = float(np.linalg.norm(train_x - centre, axis=-1).std()) + 1e-6

    def pooled(x: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(x - centre, axis=-1) / scale  # [n, T]
        weights = np.exp(ATTENTION_SHARPNESS * (distance - distance.max(axis=1, keepdims=True)))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.concatenate([(weights[..., None] * x).sum(1), x.mean(1)], axis=1)

    return pooled(train_x), pooled(test_x)
