"""The spatial readouts' linear heads, fitted many at a time: the same estimators as scikit-learn's
``make_pipeline(StandardScaler(), LogisticRegression())`` and ``make_pipeline(StandardScaler(), Ridge(alpha=1))``.

The spatial probe fits one head per cross-validation fold, per label permutation of its null, per task and
stage: thousands of tiny problems (about 40 scenes x 32 features), where scikit-learn's per-fit overhead and
L-BFGS iterations cost more than the arithmetic. Here the problems of a call are solved together, in batches
of the same shape (:func:`fit_predict`):

- **logistic**: L2-regularised logistic regression with scikit-learn's objective, sum of log-losses +
  ``||W||² / (2C)`` (intercept unpenalised), C = 1: binomial with one weight vector for two classes,
  multinomial with one vector per class for more (scikit-learn's parametrisation since 1.5), fitted on the
  classes present in the training fold. Solved by Newton's method with a backtracking line search in float64
  until the largest gradient entry is below ``tol``: the unique optimum of a strictly convex problem, which
  scikit-learn's L-BFGS (``tol=1e-4``) approaches; ``tests/test_spatial_heads.py`` checks coefficients and
  predictions against scikit-learn run to a tight tolerance.
- **ridge**: scikit-learn's ``Ridge(alpha)`` closed form with a centred intercept.

Standardisation is scikit-learn's ``StandardScaler`` (population variance; a constant feature keeps scale 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

CHUNK_BYTES = 64 * 2**20  # working memory of the heads solved at once, about (see _working_bytes)


@dataclass
class HeadProblem:
    """One head to fit on ``train_x``/``train_y`` and predict on ``test_x``; ``standardise`` adds the scaler."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    standardise: bool = True

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    @property
    def width(self) -> int:
        return int(self.train_x.shape[1])

    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train_x, train_y, test_x)."""
        return self.train_x, self.train_y, self.test_x

    def classes(self) -> np.ndarray:
        """The classes in the training labels (known without computing the features)."""
        return np.unique(self.train_y)


class Head(Protocol):
    """What :func:`fit_predict` reads of a problem: sizes and labels up front, the features only when its batch is
    solved (a planned problem computes them then, so the features held at once stay bounded)."""

    standardise: bool

    @property
    def n_train(self) -> int: ...

    @property
    def width(self) -> int: ...

    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def classes(self) -> np.ndarray: ...


def fit_predict(
    problems: Sequence[Head],
    regression: bool,
    *,
    c: float = 1.0,
    alpha: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> list[np.ndarray]:
    """Test-set predictions of every problem: class labels (logistic) or values (ridge).

    Problems are solved in batches of the same feature width, class count and training-set size, so no training row
    is padded: each problem's arithmetic is the same whatever else is in its batch, and its predictions do not
    depend on how the problems are grouped (``tests/test_spatial_heads.py``). A batch holds at most about
    ``CHUNK_BYTES`` of working memory, whatever the number of scenes."""
    out: list[np.ndarray | None] = [None] * len(problems)
    groups: dict[tuple[int, int, int], list[int]] = {}
    classes: list[np.ndarray] = []
    for index, problem in enumerate(problems):
        labels = problem.classes() if not regression else np.zeros(0)
        classes.append(labels)
        groups.setdefault((problem.width, len(labels), problem.n_train), []).append(index)
    for (dim, n_classes, n_train), members in groups.items():
        step = max(1, CHUNK_BYTES // _working_bytes(dim, n_classes, n_train))
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            inputs = [problems[i].inputs() for i in chunk]
            x, test, test_mask = _standardised(inputs, [problems[i].standardise for i in chunk])
            if regression:
                y = torch.from_numpy(np.stack([train_y.astype(np.float64) for _, train_y, _ in inputs]))
                values = _ridge(x, y, test, alpha)
                for row, index in enumerate(chunk):
                    out[index] = values[row, : int(test_mask[row].sum())].numpy()
                continue
            codes = np.stack([np.searchsorted(classes[i], train_y) for i, (_, train_y, _) in zip(chunk, inputs)])
            y = torch.from_numpy(codes.astype(np.int64))
            del inputs
            if n_classes == 1:
                picked = torch.zeros(test.shape[:2], dtype=torch.long)
            elif n_classes == 2:
                picked = (_binomial(x, y, c, tol, max_iter, test) > 0).long()
            else:
                picked = _multinomial(x, y, n_classes, c, tol, max_iter, test).argmax(-1)
            for row, index in enumerate(chunk):
                out[index] = classes[index][picked[row, : int(test_mask[row].sum())].numpy()]
    return out  # type: ignore[return-value]


def _working_bytes(dim: int, n_classes: int, n_rows: int) -> int:
    """About the memory one problem takes while its batch is solved, measured on this code (peak resident memory
    of a batch over its count): ridge holds about 4 copies of its [n, d + 1] float64 design, logistic regression
    about 10 (the design, its weighted copies, gradients, line-search points); the multinomial adds its float32
    Hessian (built, mixed and factorised, about 20 bytes per entry of [P, P]) and per-row products over the classes
    (about 28 bytes per row, feature and class)."""
    width = dim + 1
    if n_classes == 0:  # ridge
        return 8 * n_rows * width * 4
    rows = 8 * n_rows * width * 10
    if n_classes > 2:
        params = (n_classes - 1) * width
        return rows + 20 * params * params + 28 * n_rows * width * n_classes
    return rows + 24 * width * width


def _standardised(
    inputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], standardise: list[bool]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train features (float64, every problem of the batch has the same rows) and padded test features with their
    mask, scaled as StandardScaler would where asked."""
    n_train = len(inputs[0][0])
    n_test = max(len(test_x) for _, _, test_x in inputs)
    dim = inputs[0][0].shape[1]
    x = torch.zeros(len(inputs), n_train, dim, dtype=torch.float64)
    test = torch.zeros(len(inputs), n_test, dim, dtype=torch.float64)
    test_mask = torch.zeros(len(inputs), n_test, dtype=torch.float64)
    for i, ((train_x, _, test_x), scaled) in enumerate(zip(inputs, standardise)):
        train_x, test_x = train_x.astype(np.float64), test_x.astype(np.float64)
        if scaled:
            mean = train_x.mean(0)
            scale = np.sqrt(((train_x - mean) ** 2).mean(0))
            scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
            train_x, test_x = (train_x - mean) / scale, (test_x - mean) / scale
        x[i] = torch.from_numpy(train_x)
        test[i, : len(test_x)] = torch.from_numpy(test_x)
        test_mask[i, : len(test_x)] = 1.0
    return x, test, test_mask


def _ridge(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge with an unpenalised intercept: centred normal equations, as scikit-learn's dense solver."""
    count = x.shape[1]
    x_mean = x.sum(1) / count
    y_mean = y.sum(1, keepdim=True) / count
    xc = x - x_mean[:, None]
    yc = y - y_mean
    gram = xc.transpose(1, 2) @ xc + alpha * torch.eye(x.shape[2], dtype=x.dtype)
    weights = torch.linalg.solve(gram, (xc.transpose(1, 2) @ yc[..., None]))[..., 0]
    return torch.einsum("bnd,bd->bn", test - x_mean[:, None], weights) + y_mean


def _with_intercept(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(*x.shape[:2], 1, dtype=x.dtype)], dim=2)


def _penalty_diagonal(dim: int, c: float) -> torch.Tensor:
    """1/C on the weights, 0 on the intercept (the last column)."""
    diagonal = torch.full((dim + 1,), 1.0 / c, dtype=torch.float64)
    diagonal[-1] = 0.0
    return diagonal


def _newton(
    objective,
    gradient,
    hessian,
    w: torch.Tensor,
    tol: float,
    max_iter: int,  # noqa: ANN001
    measured=None,
) -> torch.Tensor:  # noqa: ANN001
    """Damped Newton (backtracking line search) on a batch of independent strictly convex problems, parameters
    [B, P]; ``objective(w, rows)``, ``gradient(w, rows)`` and ``hessian(w, rows)`` evaluate the problems ``rows``.
    A problem leaves the batch once its largest gradient entry (of ``measured(gradient)`` when given: the
    gradient in the problem's original coordinates) is below ``tol`` (its iterates do not depend on the rest),
    before its Hessian is formed; the Hessian is built, shifted and factorised in place (it dominates the cost:
    [B, P, P])."""
    rows = torch.arange(w.shape[0])
    for _ in range(max_iter):
        grad = gradient(w[rows], rows)
        keep = (grad if measured is None else measured(grad)).abs().amax(1) > tol
        rows, grad = rows[keep], grad[keep]
        if not len(rows):
            break
        system = hessian(w[rows], rows)
        system.diagonal(dim1=1, dim2=2).add_(1e-6)  # the multinomial's free intercept shift
        solved, info = torch.linalg.solve_ex(system, grad[..., None].to(system.dtype))
        step = -solved[..., 0].to(w.dtype)
        bad = (info != 0) | ~torch.isfinite(step).all(1)
        if bool(bad.any()):  # numerically singular (saturated probabilities): the least-squares step, in float64
            exact = hessian(w[rows[bad]], rows[bad]).to(torch.float64)
            step[bad] = -(torch.linalg.pinv(exact) @ grad[bad][..., None])[..., 0]
        start = w[rows]
        current = objective(start, rows)
        slope = (grad * step).sum(1)
        t = torch.ones(len(rows), dtype=w.dtype)
        for _ in range(40):
            failed = objective(start + t[:, None] * step, rows) > current + 1e-4 * t * slope
            if not bool(failed.any()):
                break
            t[failed] *= 0.5
        w[rows] = start + t[:, None] * step
    return w


def _binomial(
    x: torch.Tensor, y: torch.Tensor, c: float, tol: float, max_iter: int, test: torch.Tensor
) -> torch.Tensor:
    """Decision values of L2 logistic regression (labels 0/1), one weight vector per problem."""
    design = _with_intercept(x)
    penalty = _penalty_diagonal(x.shape[2], c)
    target = y.to(torch.float64)

    def objective(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("bnd,bd->bn", design[rows], w)
        loss = torch.nn.functional.softplus(z) - target[rows] * z
        return loss.sum(1) + 0.5 * (penalty * w * w).sum(1)

    def gradient(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(torch.einsum("bnd,bd->bn", design[rows], w))
        return torch.einsum("bn,bnd->bd", p - target[rows], design[rows]) + penalty * w

    def hessian(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        p = torch.sigmoid(torch.einsum("bnd,bd->bn", data, w))
        weighted = data * (p * (1 - p))[..., None]
        out = weighted.transpose(1, 2) @ data
        out.diagonal(dim1=1, dim2=2).add_(penalty)
        return out

    w = _newton(
        objective, gradient, hessian, torch.zeros(x.shape[0], x.shape[2] + 1, dtype=torch.float64), tol, max_iter
    )
    return torch.einsum("bnd,bd->bn", _with_intercept(test), w)


def _multinomial(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    c: float,
    tol: float,
    max_iter: int,
    test: torch.Tensor,
) -> torch.Tensor:
    """Class scores of L2 multinomial logistic regression (labels 0..K-1), one weight vector per class.

    scikit-learn's parametrisation (K weight vectors, all penalised; K unpenalised intercepts) is solved in the
    subspace where the K vectors sum to zero, with K - 1 coordinates ``V`` per feature (``W = Q V``, ``Q`` an
    orthonormal basis of the zero-sum vectors): the data term's Hessian annihilates a common shift of all
    classes and the penalty treats every class alike, so Newton's iterates from zero never leave that subspace,
    and the optimum (its weights sum to zero; its intercepts are free up to a common shift, which no prediction
    sees) lies in it. The iterates are those of the full problem, with (K - 1)/K of its parameters: a third of
    the cost of the solves at K = 3, 70% at 9 cells. Convergence is measured on the full gradient ``Q G_V``.
    """
    design = _with_intercept(x)
    width, reduced = x.shape[2] + 1, n_classes - 1
    penalty = _penalty_diagonal(x.shape[2], c).repeat(reduced)  # parameters ordered class-major: [(K - 1) * (d + 1)]
    onehot = torch.nn.functional.one_hot(y, n_classes).to(torch.float64)
    centring = torch.eye(n_classes, dtype=torch.float64) - 1.0 / n_classes
    basis = torch.linalg.qr(centring[:, :reduced])[0]  # [K, K - 1], orthonormal, columns summing to zero
    pair_basis = torch.einsum("kj,kl->jlk", basis, basis).reshape(reduced * reduced, n_classes).float()  # Q_kj Q_kl

    def full(v: torch.Tensor) -> torch.Tensor:  # [b, (K - 1) * width] -> [b, K, width]
        return torch.matmul(basis, v.view(v.shape[0], reduced, width))

    def scores(v: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return data @ full(v).transpose(1, 2)  # [b, n, K]

    def objective(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z = scores(v, design[rows])
        loss = torch.logsumexp(z, dim=2) - (onehot[rows] * z).sum(2)
        return loss.sum(1) + 0.5 * (penalty * v * v).sum(1)

    def gradient(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        p = torch.softmax(scores(v, data), dim=2)
        data_term = torch.matmul(basis.T, (p - onehot[rows]).transpose(1, 2) @ data)  # Qᵀ (P - Y)ᵀ X: [b, K - 1, width]
        return data_term.reshape(len(rows), -1) + penalty * v

    def hessian(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        batch, n_rows, _ = data.shape
        p = torch.softmax(scores(v, data), dim=2)
        # H[(j,a),(l,c)] = sum_i (sum_k Q_kj Q_kl p_ik - u_ij u_il) x_ia x_ic, u_i = Qᵀ p_i (+ the penalty), in float32
        u = p @ basis  # [b, n, K - 1]
        outer = (u[..., None] * data[:, :, None, :]).reshape(batch, n_rows, -1).float()  # [b, n, (K - 1) * width]
        out = (outer.transpose(1, 2) @ outer).neg_()
        weighted = (p[..., None] * data[:, :, None, :]).reshape(batch, n_rows, -1).float()  # [b, n, K * width]
        blocks = (weighted.transpose(1, 2) @ data.float()).view(batch, n_classes, width * width)  # sum_i p_ik x_i x_iᵀ
        mixed = (pair_basis @ blocks).view(batch, reduced, reduced, width, width)  # sum_k Q_kj Q_kl (block k)
        out.view(batch, reduced, width, reduced, width).add_(mixed.permute(0, 1, 3, 2, 4))
        out.diagonal(dim1=1, dim2=2).add_(penalty.float())
        return out

    v = _newton(
        objective,
        gradient,
        hessian,
        torch.zeros(x.shape[0], reduced * width, dtype=torch.float64),
        tol,
        max_iter,
        measured=lambda g: full(g).reshape(g.shape[0], -1),
    )
    return scores(v, _with_intercept(test))
