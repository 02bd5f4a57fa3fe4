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

from mmdiag.metrics.stats import bootstrap_ci, over_draw_blocks
from mmdiag.probes.spatial.folds import kfold, stratified_kfold
from mmdiag.probes.spatial.heads import fit_predict

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
    """:func:`score_of` of every bootstrap draw (``draws``: [n_draws, n] row indices), a block of draws at a time."""
    return over_draw_blocks(draws, lambda rows: _scores_of_block(y, pred, regression, rows), len(y))


def _scores_of_block(y: np.ndarray, pred: np.ndarray, regression: bool, draws: np.ndarray) -> np.ndarray:
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
    so a fold's features are computed once however many target sets reuse the fold, and only when its heads are
    fitted. Every head of the call (the real labels' folds and every permutation's) is fitted in batches
    (:mod:`mmdiag.probes.spatial.heads`); callers with many readouts plan them all (:func:`plan_out_of_fold`) and
    fit every head together.
    """
    plan = plan_out_of_fold(tokens, labels, regression, readout, seed, permutations)
    return None if plan is None else plan.finish(fit_predict(plan.problems, regression))


class FoldFeatures:
    """The readout's features of each distinct training fold of a plan, computed on first use and dropped after
    the last head that reads them. A plan holds each fold's test rows (int32) and the target sets, nothing of size
    heads x scenes, so what is held before fitting stays small at thousands of scenes."""

    def __init__(self, tokens: np.ndarray, rows: np.ndarray | None, readout: str, seed: int, n: int) -> None:
        self.tokens, self.rows, self.readout, self.seed, self.n = tokens, rows, readout, seed, n
        self.tests: list[np.ndarray] = []  # each fold's test rows (of the labelled rows), ascending
        self.uses: list[int] = []
        self.ready: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, test: np.ndarray) -> int:
        self.tests.append(test.astype(np.int32))
        self.uses.append(0)
        return len(self.tests) - 1

    def train(self, fold: int) -> np.ndarray:
        """The fold's training rows, ascending (the complement of its test rows)."""
        keep = np.ones(self.n, dtype=bool)
        keep[self.tests[fold]] = False
        return np.flatnonzero(keep)

    def take(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """The fold's (train, test) features; freed once every head of the fold has taken them. Heads of one fold
        are fitted on one thread (:func:`mmdiag.probes.spatial._fit_shares`), so a fold is computed once."""
        features = self.ready.get(fold)
        if features is None:
            train, test = self.train(fold), self.tests[fold]
            pick = (lambda idx: self.tokens[idx]) if self.rows is None else (lambda idx: self.tokens[self.rows[idx]])
            features = _readout_features(self.readout, pick(train), pick(test), self.seed)
        self.uses[fold] -= 1
        if self.uses[fold] > 0:
            self.ready[fold] = features
        else:
            self.ready.pop(fold, None)
        return features


@dataclass
class PlannedHead:
    """A head of a plan: its sizes and classes now, its labels and features (:class:`FoldFeatures`) when fitted."""

    features: FoldFeatures
    fold: int
    targets: np.ndarray  # the target set this head is fitted on (all labelled rows)
    n_train: int
    width: int
    standardise: bool
    present: np.ndarray | None  # the classes in the training fold (classification)

    @property
    def share_key(self) -> tuple[int, int]:
        """Heads with the same key read the same features (fit them on one thread)."""
        return id(self.features), self.fold

    def classes(self) -> np.ndarray:
        return self.present if self.present is not None else np.zeros(0)

    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        train_x, test_x = self.features.take(self.fold)
        return train_x, self.targets[self.features.train(self.fold)], test_x


@dataclass
class FoldPlan:
    """One readout's cross-validation, planned: every head to fit (``problems``, each owned by a target set and
    the fold whose test rows it predicts); :meth:`finish` turns their predictions into the :class:`OutOfFold`."""

    y: np.ndarray
    regression: bool
    majority: float | None
    target_sets: list[np.ndarray]  # the real labels, then each permutation's
    fittable: list[bool]
    problems: list[PlannedHead]
    owners: list[tuple[int, int]]  # (target set, fold) of each head

    def finish(self, predicted: Sequence[np.ndarray]) -> OutOfFold:
        """The out-of-fold predictions and the permutation null from the heads' test predictions, in order."""
        n = len(self.y)
        predictions = [np.zeros(n) if self.regression else np.zeros(n, dtype=int) for _ in self.target_sets]
        tests = self.problems[0].features.tests if self.problems else []
        for (which, fold), values in zip(self.owners, predicted):
            predictions[which][tests[fold]] = values
        null = [
            score_of(targets, pred, self.regression)
            for targets, pred, ok in zip(self.target_sets[1:], predictions[1:], self.fittable[1:])
            if ok
        ]
        return OutOfFold(self.y, predictions[0], self.regression, self.majority, np.array(null))


def plan_out_of_fold(
    tokens: np.ndarray,
    labels: Sequence[Any],
    regression: bool,
    readout: str,
    seed: int,
    permutations: int = 0,
    rows: np.ndarray | None = None,
) -> FoldPlan | None:
    """The folds and heads of :func:`out_of_fold`, not yet fitted (None when it cannot be fitted). ``rows``: the
    rows of ``tokens`` the labels belong to (all of them when None), so a caller's full column is never copied."""
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
    features = FoldFeatures(tokens, rows, readout, seed, n)
    seen: dict[bytes, int] = {}
    rng = np.random.default_rng(seed + 7919)
    target_sets = [y] + [y[rng.permutation(n)] for _ in range(permutations)]
    problems: list[PlannedHead] = []
    owners: list[tuple[int, int]] = []
    fittable = [True] * len(target_sets)
    for which, targets in enumerate(target_sets):
        # the whole cross-validation procedure on these targets: its folds (stratified on them), the fold's
        # features (shared by every target set with the same training rows: they depend on the fold's tokens only)
        splits = stratified_kfold(targets, FOLDS, seed) if stratified else kfold(n, FOLDS, seed)
        mine: list[tuple[np.ndarray, int, np.ndarray | None]] = []
        for train, test in splits:
            present = None if regression else np.unique(targets[train])
            if present is not None and len(present) < 2:
                fittable[which] = False
                break
            mine.append((test, len(train), present))
        if not fittable[0]:
            return None
        if not fittable[which]:
            continue
        for test, n_train, present in mine:
            key = test.tobytes()
            if key not in seen:
                seen[key] = features.add(test)
            fold = seen[key]
            features.uses[fold] += 1
            # the flattened readout's features are already standardised tokens through PCA
            width = _readout_width(readout, tokens.shape, n_train)
            head = PlannedHead(features, fold, targets, n_train, width, readout != "flattened", present)
            problems.append(head)
            owners.append((which, fold))
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


def _readout_width(readout: str, shape: tuple[int, ...], n_train: int) -> int:
    """The width of a fold's features, known before they are computed."""
    if readout == "flattened":
        return _components(n_train, int(np.prod(shape[1:])))
    return 2 * int(shape[-1])


def _components(n_train: int, n_features: int) -> int:
    return max(1, min(PCA_BUDGET, n_train - 1, n_features))


def _flattened_features(train_x: np.ndarray, test_x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All tokens flattened, standardised, PCA to at most ``PCA_BUDGET`` components (fitted on the fold).

    scikit-learn's ``StandardScaler`` then ``PCA(n_components, random_state=seed)`` written out in float64, with
    the solver its ``svd_solver="auto"`` picks (:func:`pca_solver`): an exact decomposition on small problems, its
    randomized SVD (Halko et al. 2011: 10 oversamples, 7 or 4 LU-normalised power iterations, the same Gaussian
    draws from ``RandomState(seed)``) once the fold holds more than 500 rows or features and the components are
    fewer than 80% of the smaller side. So its cost is linear in the scenes, and the features span the subspace
    scikit-learn's pipeline finds; the L2 head on them is invariant to the components' signs and to rotations
    within it, so predictions are the pipeline's (``tests/test_spatial_heads.py`` compares both solvers).

    The exact solver with fewer scenes than features reads the SVD off the scenes' Gram matrix: for centred
    ``A = U S Vᵀ``, ``A Aᵀ = U S² Uᵀ``, so the training projections are ``U S`` and a test row ``b`` projects to
    ``b Aᵀ U / S``: an [n, n] eigenproblem instead of an [n, D] SVD. Components with no variance (``S`` ~ 0:
    constant tokens) project to 0, where an SVD would pick an arbitrary direction in the empty part of the space.
    """
    centred = train_x.reshape(len(train_x), -1).astype(np.float64)  # standardised, then centred, in place
    test_c = test_x.reshape(len(test_x), -1).astype(np.float64)
    components = _components(len(train_x), centred.shape[1])
    mean = centred.mean(axis=0)
    scale = centred.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    for rows in (centred, test_c):
        rows -= mean
        rows /= scale
    centre = centred.mean(axis=0)
    centred -= centre
    test_c -= centre
    if pca_solver(centred.shape, components) == "randomized":
        basis = randomized_components(centred, components, seed)
        return centred @ basis, test_c @ basis
    if centred.shape[0] >= centred.shape[1]:  # more scenes than features: the plain SVD is the small problem
        basis = np.linalg.svd(centred, full_matrices=False)[2][:components].T
        return centred @ basis, test_c @ basis
    eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)  # ascending
    order = np.argsort(eigenvalues)[::-1][:components]
    singular = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    left = vectors[:, order]
    alive = singular > singular.max(initial=0.0) * 1e-7 if singular.size else singular.astype(bool)
    inverse = np.where(alive, 1.0 / np.where(alive, singular, 1.0), 0.0)
    train_f = left * np.where(alive, singular, 0.0)
    test_f = (test_c @ centred.T) @ left * inverse
    return train_f, test_f


def pca_solver(shape: tuple[int, int], components: int) -> str:
    """The solver scikit-learn's ``PCA(svd_solver="auto")`` (1.5+) picks for dense data of ``shape``: "exact"
    (its "covariance_eigh" and "full": the same subspace, to round-off) or "randomized"."""
    n_rows, n_features = shape
    if n_features <= 1_000 and n_rows >= 10 * n_features:
        return "exact"
    if max(shape) <= 500:
        return "exact"
    if 1 <= components < 0.8 * min(shape):
        return "randomized"
    return "exact"


def randomized_components(centred: np.ndarray, components: int, seed: int) -> np.ndarray:
    """[D, components]: a basis of the principal subspace scikit-learn's ``randomized_svd(A, components,
    n_oversamples=10, n_iter="auto", random_state=seed)`` finds for centred [n, D] rows ``A``: the range of
    ``A (AᵀA)^q Ω`` (of ``Aᵀ (A Aᵀ)^q Ω`` when rows are fewer than features: it works on ``Aᵀ`` then), with its
    Gaussian ``Ω`` (``RandomState(seed).normal``) and its ``q`` (7, or 4 when the components are 10% of the
    smaller side or more), then the top singular vectors of ``A`` in that range.

    The power iterations multiply by the smaller of ``A Aᵀ`` and ``AᵀA``, formed once, instead of by ``A`` and
    ``Aᵀ`` in turn: the same subspace (normalising between steps, LU there, QR here, changes the basis, not its
    span), to round-off, at a fraction of the cost (``tests/test_spatial_heads.py`` compares it with
    scikit-learn's PCA)."""
    n_rows, n_features = centred.shape
    n_iter = 7 if components < 0.1 * min(n_rows, n_features) else 4
    draws = np.random.RandomState(seed)
    if n_rows < n_features:
        y = draws.normal(size=(n_rows, components + 10))
        gram = centred @ centred.T
        for _ in range(n_iter):
            y = np.linalg.qr(gram @ y)[0]
        q = np.linalg.qr(centred.T @ y)[0]  # [D, s]: the range of Aᵀ (A Aᵀ)^q Ω
        u_hat = np.linalg.svd((centred @ q).T, full_matrices=False)[0]
        return (q @ u_hat)[:, :components]
    y = draws.normal(size=(n_features, components + 10))
    covariance = centred.T @ centred
    for _ in range(n_iter):
        y = np.linalg.qr(covariance @ y)[0]
    q = np.linalg.qr(centred @ y)[0]  # [n, s]: the range of A (AᵀA)^q Ω
    return np.linalg.svd(q.T @ centred, full_matrices=False)[2][:components].T


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
