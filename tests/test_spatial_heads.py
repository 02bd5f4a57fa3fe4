"""Known answers for the spatial probe's batched heads and PCA features: scikit-learn's own estimators.

``mmdiag.probes.spatial.heads`` fits scikit-learn's ``StandardScaler -> LogisticRegression()`` / ``Ridge(alpha=1)``
many at a time; the readouts' flattened features write out ``StandardScaler -> PCA``. Here both are compared with
scikit-learn itself (logistic regression run to a tight tolerance, so both solve the same problem to the end).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmdiag.probes.spatial.heads import HeadProblem, fit_predict
from mmdiag.probes.spatial.readouts import _flattened_features


def _problems(n_classes: int, count: int, seed: int, dim: int = 32, standardise: bool = True) -> list[HeadProblem]:
    rng = np.random.default_rng(seed)
    problems = []
    for b in range(count):
        n = 38 + b % 3
        y = rng.integers(0, n_classes, n)
        x = rng.normal(size=(n, dim)).astype(np.float32)
        x[:, : min(3, dim)] += 1.5 * y[:, None]  # some signal, so the optimum is not the trivial one
        x[:, 5] = x[:, 4] * 0.999 + 0.001 * x[:, 6]  # collinear columns, as pooled token features are
        x[:, 7] = 2.0  # a constant column (StandardScaler keeps scale 1)
        test = rng.normal(size=(9 + b % 2, dim)).astype(np.float32)
        test[:, : min(3, dim)] += rng.integers(0, n_classes, (len(test), 1))
        problems.append(HeadProblem(x, y * 3 + 1, test, standardise))  # labels need not be 0..K-1
    return problems


def _sklearn_logistic(problem: HeadProblem) -> LogisticRegression:
    model = LogisticRegression(max_iter=100_000, tol=1e-12)
    if problem.standardise:
        return make_pipeline(StandardScaler(), model).fit(problem.train_x.astype(np.float64), problem.train_y)
    return model.fit(problem.train_x.astype(np.float64), problem.train_y)


@pytest.mark.parametrize("n_classes", [2, 3, 9])
@pytest.mark.parametrize("standardise", [True, False])
def test_logistic_heads_predict_as_scikit_learn(n_classes, standardise):
    problems = _problems(n_classes, 12, seed=n_classes, standardise=standardise)
    ours = fit_predict(problems, regression=False)
    for problem, predicted in zip(problems, ours):
        reference = _sklearn_logistic(problem)
        assert predicted.tolist() == reference.predict(problem.test_x.astype(np.float64)).tolist()
        # not only the argmax: the decision values agree, so the same optimum was reached
        ours_scores = _decision(problem, n_classes)
        reference_scores = reference.decision_function(problem.test_x.astype(np.float64))
        if n_classes > 2:  # softmax is blind to one constant added to every class's intercept: compare centred
            ours_scores = ours_scores - ours_scores.mean(1, keepdims=True)
            reference_scores = reference_scores - reference_scores.mean(1, keepdims=True)
        np.testing.assert_allclose(ours_scores, reference_scores, atol=1e-4, rtol=1e-4)


def _decision(problem: HeadProblem, n_classes: int) -> np.ndarray:
    """Our decision values, read through the private solvers exactly as fit_predict calls them."""
    import torch

    from mmdiag.probes.spatial import heads

    x, test, _ = heads._standardised([problem.inputs()], [problem.standardise])
    codes = np.searchsorted(np.unique(problem.train_y), problem.train_y)
    y = torch.as_tensor(codes)[None]
    if n_classes == 2:
        return heads._binomial(x, y, 1.0, 1e-6, 100, test)[0, : len(problem.test_x)].numpy()
    scores = heads._multinomial(x, y, n_classes, 1.0, 1e-6, 100, test)[0, : len(problem.test_x)].numpy()
    return scores


def test_a_class_missing_from_the_training_fold_is_never_predicted():
    rng = np.random.default_rng(3)
    y = np.array([0, 1, 2] * 13)
    x = rng.normal(size=(39, 8)) + y[:, None]
    train = y != 1
    problem = HeadProblem(x[train], y[train], x[~train])
    (ours,) = fit_predict([problem], regression=False)
    reference = _sklearn_logistic(problem).predict(x[~train])
    assert set(ours) <= {0, 2} and ours.tolist() == reference.tolist()


def test_ridge_heads_equal_scikit_learn():
    rng = np.random.default_rng(5)
    problems = []
    for b in range(10):
        x = rng.normal(size=(38 + b % 2, 32))
        problems.append(
            HeadProblem(x, x[:, 0] * 2 - x[:, 3] + rng.normal(size=len(x)), rng.normal(size=(10, 32)), b % 2 == 0)
        )
    for problem, predicted in zip(problems, fit_predict(problems, regression=True)):
        model = Ridge(alpha=1.0)
        pipeline = make_pipeline(StandardScaler(), model) if problem.standardise else model
        np.testing.assert_allclose(
            predicted, pipeline.fit(problem.train_x, problem.train_y).predict(problem.test_x), atol=1e-10
        )


def test_one_class_in_the_training_fold_predicts_it():
    problem = HeadProblem(np.ones((5, 3)), np.array([4] * 5), np.zeros((2, 3)))
    assert fit_predict([problem], regression=False)[0].tolist() == [4, 4]


def test_flattened_features_give_the_scikit_learn_pipelines_predictions():
    """Our StandardScaler -> PCA features and scikit-learn's span the same subspace: the same head predicts alike."""
    rng = np.random.default_rng(11)
    tokens = rng.normal(size=(48, 64, 16)).astype(np.float32)
    tokens[:, 3] += np.repeat(np.arange(4), 12)[:, None]  # a signal in one token
    labels = np.repeat(np.arange(4), 12)
    train, test = np.arange(48) % 5 != 0, np.arange(48) % 5 == 0
    ours_train, ours_test = _flattened_features(tokens[train], tokens[test], seed=0)
    reduce = make_pipeline(StandardScaler(), PCA(n_components=32, random_state=0)).fit(
        tokens[train].reshape(int(train.sum()), -1)
    )
    ref_train = reduce.transform(tokens[train].reshape(int(train.sum()), -1))
    ref_test = reduce.transform(tokens[test].reshape(int(test.sum()), -1))
    np.testing.assert_allclose(np.abs(ours_train), np.abs(ref_train), atol=2e-3)  # the same components, up to sign
    for features_train, features_test in ((ours_train, ours_test), (ref_train, ref_test)):
        model = LogisticRegression(max_iter=100_000, tol=1e-12).fit(features_train.astype(np.float64), labels[train])
        predicted = model.predict(features_test.astype(np.float64))
        if features_train is ours_train:
            first = predicted
    assert first.tolist() == predicted.tolist()
    (batched,) = fit_predict([HeadProblem(ours_train, labels[train], ours_test, standardise=False)], regression=False)
    assert batched.tolist() == first.tolist()


def test_saturated_probabilities_still_fit():
    """Unscaled, perfectly separable features saturate the softmax: the Hessian is numerically singular, the step
    falls back to least squares, and the separable classes are still told apart."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(9), 5)
    x = np.zeros((45, 12))
    x[np.arange(45), y] = 1e4
    x += rng.normal(scale=1e-3, size=x.shape)
    problems = [
        HeadProblem(x, y, x[::5], standardise=False),
        HeadProblem(x[:10], y[:10] % 2, x[:10], standardise=False),
    ]
    many, two = fit_predict(problems, regression=False)
    assert many.tolist() == list(range(9))
    assert two.tolist() == (y[:10] % 2).tolist()
