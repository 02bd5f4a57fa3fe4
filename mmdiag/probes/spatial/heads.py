"""The spatial readouts' linear heads, fitted many at a time: the same estimators as scikit-learn's
``make_pipeline(StandardScaler(), LogisticRegression())`` and ``make_pipeline(StandardScaler(), Ridge(alpha=1))``.

The spatial probe fits one head per cross-validation fold, per label permutation of its null, per task and
stage: thousands of tiny problems (about 40 scenes x 32 features), where scikit-learn's per-fit overhead and
L-BFGS iterations cost more than the arithmetic. Here every problem of a call is solved in one batch:

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

import numpy as np
import torch

CHUNK_PARAMETERS = 40_000_000  # float64 Hessian entries solved at once (about 320 MB)


@dataclass
class HeadProblem:
    """One head to fit on ``train_x``/``train_y`` and predict on ``test_x``; ``standardise`` adds the scaler."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    standardise: bool = True


def fit_predict(
    problems: Sequence[HeadProblem],
    regression: bool,
    *,
    c: float = 1.0,
    alpha: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> list[np.ndarray]:
    """Test-set predictions of every problem: class labels (logistic) or values (ridge)."""
    out: list[np.ndarray | None] = [None] * len(problems)
    groups: dict[tuple[int, int], list[int]] = {}
    classes: list[np.ndarray] = []
    for index, problem in enumerate(problems):
        labels = np.unique(problem.train_y) if not regression else np.zeros(0)
        classes.append(labels)
        groups.setdefault((problem.train_x.shape[1], len(labels)), []).append(index)
    for (dim, n_classes), members in groups.items():
        per_problem = (dim + 1) ** 2 * max(1, n_classes if n_classes > 2 else 1) ** 2
        step = max(1, CHUNK_PARAMETERS // per_problem)
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            x, mask, test, test_mask = _standardised([problems[i] for i in chunk])
            if regression:
                y = _padded([problems[i].train_y.astype(np.float64) for i in chunk], x.shape[1])
                values = _ridge(x, y, mask, test, alpha)
                for row, index in enumerate(chunk):
                    out[index] = values[row, : int(test_mask[row].sum())].numpy()
                continue
            codes = [np.searchsorted(classes[i], problems[i].train_y) for i in chunk]
            y = _padded([c_.astype(np.float64) for c_ in codes], x.shape[1]).long()
            if n_classes == 1:
                picked = torch.zeros(test.shape[:2], dtype=torch.long)
            elif n_classes == 2:
                picked = (_binomial(x, y, mask, c, tol, max_iter, test) > 0).long()
            else:
                picked = _multinomial(x, y, mask, n_classes, c, tol, max_iter, test).argmax(-1)
            for row, index in enumerate(chunk):
                out[index] = classes[index][picked[row, : int(test_mask[row].sum())].numpy()]
    return out  # type: ignore[return-value]


def _padded(rows: list[np.ndarray], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.from_numpy(np.asarray(row, dtype=np.float64))
    return out


def _standardised(problems: list[HeadProblem]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded train and test features (float64) with their masks, scaled as StandardScaler would where asked."""
    n_train = max(len(p.train_x) for p in problems)
    n_test = max(len(p.test_x) for p in problems)
    dim = problems[0].train_x.shape[1]
    x = torch.zeros(len(problems), n_train, dim, dtype=torch.float64)
    test = torch.zeros(len(problems), n_test, dim, dtype=torch.float64)
    mask = torch.zeros(len(problems), n_train, dtype=torch.float64)
    test_mask = torch.zeros(len(problems), n_test, dtype=torch.float64)
    for i, p in enumerate(problems):
        train_x, test_x = p.train_x.astype(np.float64), p.test_x.astype(np.float64)
        if p.standardise:
            mean = train_x.mean(0)
            scale = np.sqrt(((train_x - mean) ** 2).mean(0))
            scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
            train_x, test_x = (train_x - mean) / scale, (test_x - mean) / scale
        x[i, : len(train_x)] = torch.from_numpy(train_x)
        test[i, : len(test_x)] = torch.from_numpy(test_x)
        mask[i, : len(train_x)] = 1.0
        test_mask[i, : len(test_x)] = 1.0
    return x, mask, test, test_mask


def _ridge(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, test: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge with an unpenalised intercept: centred normal equations, as scikit-learn's dense solver."""
    count = mask.sum(1, keepdim=True)
    x_mean = (x * mask[..., None]).sum(1) / count
    y_mean = (y * mask).sum(1, keepdim=True) / count
    xc = (x - x_mean[:, None]) * mask[..., None]
    yc = (y - y_mean) * mask
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
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, c: float, tol: float, max_iter: int, test: torch.Tensor
) -> torch.Tensor:
    """Decision values of L2 logistic regression (labels 0/1), one weight vector per problem."""
    design = _with_intercept(x)
    penalty = _penalty_diagonal(x.shape[2], c)
    target = y.to(torch.float64)

    def objective(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("bnd,bd->bn", design[rows], w)
        loss = torch.nn.functional.softplus(z) - target[rows] * z
        return (loss * mask[rows]).sum(1) + 0.5 * (penalty * w * w).sum(1)

    def gradient(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(torch.einsum("bnd,bd->bn", design[rows], w))
        return torch.einsum("bn,bnd->bd", (p - target[rows]) * mask[rows], design[rows]) + penalty * w

    def hessian(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        p = torch.sigmoid(torch.einsum("bnd,bd->bn", data, w))
        weighted = data * (p * (1 - p) * mask[rows])[..., None]
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
    mask: torch.Tensor,
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
    onehot = torch.nn.functional.one_hot(y, n_classes).to(torch.float64) * mask[..., None]
    centring = torch.eye(n_classes, dtype=torch.float64) - 1.0 / n_classes
    basis = torch.linalg.qr(centring[:, :reduced])[0]  # [K, K - 1], orthonormal, columns summing to zero
    pair_basis = torch.einsum("kj,kl->jlk", basis, basis).reshape(reduced * reduced, n_classes).float()  # Q_kj Q_kl

    def full(v: torch.Tensor) -> torch.Tensor:  # [b, (K - 1) * width] -> [b, K, width]
        return torch.matmul(basis, v.view(v.shape[0], reduced, width))

    def scores(v: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return data @ full(v).transpose(1, 2)  # [b, n, K]

    def objective(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z = scores(v, design[rows])
        loss = torch.logsumexp(z, dim=2) * mask[rows] - (onehot[rows] * z).sum(2)
        return loss.sum(1) + 0.5 * (penalty * v * v).sum(1)

    def gradient(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        p = torch.softmax(scores(v, data), dim=2) * mask[rows][..., None]
        data_term = torch.matmul(basis.T, (p - onehot[rows]).transpose(1, 2) @ data)  # Qᵀ (P - Y)ᵀ X: [b, K - 1, width]
        return data_term.reshape(len(rows), -1) + penalty * v

    def hessian(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        data = design[rows]
        batch, n_rows, _ = data.shape
        p = torch.softmax(scores(v, data), dim=2) * mask[rows][..., None]
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
