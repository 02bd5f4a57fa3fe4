"""Readouts for the spatial probe: the same probe family at every stage, whatever its number of tokens.

Every stage's tokens are first mapped to ``TOKEN_DIMS`` dims by a seeded Gaussian projection (same map for
every stage of the same width), so storage and probe capacity do not grow with the model. Then:

- ``attention``: tokens pooled by salience attention (a softmax over each token's distance from the typical
  token of the training fold, which singles out the object's tokens whatever the token count: 576 patches,
  32 queries, a pooled grid), concatenated with the mean token, then logistic / ridge regression. It reads
  what the *content* of the tokens says about position — not the token index.
- ``flattened``: all tokens flattened, standardised, PCA to at most ``PCA_BUDGET`` components (fitted in
  each training fold), then logistic / ridge regression (scikit-learn).

Scores come from out-of-fold predictions of ``FOLDS``-fold cross-validation (fixed seeds) with a bootstrap CI
over scenes: accuracy for classification, R² for regression. CKA and kNN overlap between stages are computed
on :func:`similarity_features` (the raw tokens), in :mod:`mmdiag.metrics.similarity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmdiag.metrics.stats import bootstrap_ci

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


def cross_validated(tokens: np.ndarray, labels: Sequence[Any], regression: bool, readout: str, seed: int) -> dict[str, Any]:
    """Out-of-fold score of one readout on [n, T, d] token features; ``score`` None when it cannot be fitted."""
    n = len(labels)
    metric = "r2" if regression else "accuracy"
    empty = {"score": None, "ci_low": None, "ci_high": None, "chance": 0.0 if regression else None, "metric": metric}
    if n < 2 * FOLDS:
        return empty
    if regression:
        y = np.asarray(labels, dtype=float)
        folds = KFold(FOLDS, shuffle=True, random_state=seed).split(tokens)
        pred = np.zeros(n)
    else:
        y_raw = np.asarray(labels)
        classes, y = np.unique(y_raw, return_inverse=True)
        counts = np.bincount(y)
        empty["chance"] = float(counts.max() / n)
        if len(classes) < 2:
            return empty
        splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=seed) if counts.min() >= FOLDS else KFold(FOLDS, shuffle=True, random_state=seed)
        folds = splitter.split(tokens, y)
        pred = np.zeros(n, dtype=int)
    for train, test in folds:
        if not regression and len(np.unique(y[train])) < 2:
            return empty
        fit = _attention_fit if readout == "attention" else _flattened_fit
        pred[test] = fit(tokens[train], y[train], tokens[test], regression, seed, 0 if regression else len(classes))
    if regression:
        total = float(((y - y.mean()) ** 2).sum())
        if total <= 0:
            return empty
        squared = (y - pred) ** 2
        r2 = 1 - float(squared.sum()) / total
        low, high = bootstrap_ci(np.stack([y, pred], axis=1), _r2_of_rows, seed=seed)
        return {"score": r2, "ci_low": low, "ci_high": high, "chance": 0.0, "metric": metric}
    correct = (pred == y).astype(float)
    low, high = bootstrap_ci(correct, seed=seed)
    return {"score": float(correct.mean()), "ci_low": low, "ci_high": high, "chance": empty["chance"], "metric": metric}


def _r2_of_rows(rows: np.ndarray) -> float:
    y, pred = rows[:, 0], rows[:, 1]
    total = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - pred) ** 2).sum()) / total if total > 0 else float("nan")


def _flattened_fit(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, regression: bool, seed: int,
                   n_classes: int) -> np.ndarray:
    flat_train, flat_test = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    components = max(1, min(PCA_BUDGET, len(train_x) - 1, flat_train.shape[1]))
    head = Ridge(alpha=1.0) if regression else LogisticRegression(max_iter=2000)
    model = make_pipeline(StandardScaler(), PCA(n_components=components, random_state=seed), head)
    model.fit(flat_train, train_y)
    return model.predict(flat_test)


def _attention_fit(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, regression: bool, seed: int,
                   n_classes: int) -> np.ndarray:
    """Salience-attention pooled probe: tokens pooled by a softmax over their distance from the typical
    (training-fold mean) token, so the pool attends to the object's tokens whatever the token count; the
    pooled token and the mean token feed a logistic / ridge head."""
    centre = train_x.reshape(-1, train_x.shape[-1]).mean(0)
    scale = float(np.linalg.norm(train_x - centre, axis=-1).std()) + 1e-6

    def pooled(x: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(x - centre, axis=-1) / scale  # [n, T]
        weights = np.exp(ATTENTION_SHARPNESS * (distance - distance.max(axis=1, keepdims=True)))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.concatenate([(weights[..., None] * x).sum(1), x.mean(1)], axis=1)

    head = Ridge(alpha=1.0) if regression else LogisticRegression(max_iter=2000)
    model = make_pipeline(StandardScaler(), head)
    model.fit(pooled(train_x), train_y)
    return model.predict(pooled(test_x))
