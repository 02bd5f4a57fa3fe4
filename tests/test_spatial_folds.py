"""The spatial probe's fold splits are scikit-learn's own: the same (train, test) index arrays as
``StratifiedKFold`` / ``KFold(shuffle=True, random_state=seed)`` for the label vectors the probe meets (binary,
9 grid cells, unbalanced, permuted labels, labels that are not 0..K-1) and the sizes it meets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from mmdiag.probes.spatial.folds import kfold, stratified_kfold


def _same(ours, theirs) -> None:
    theirs = list(theirs)
    assert len(ours) == len(theirs)
    for (train, test), (ref_train, ref_test) in zip(ours, theirs):
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)


@pytest.mark.parametrize("n_classes", [2, 3, 9])
def test_stratified_folds_are_scikit_learns(n_classes):
    rng = np.random.default_rng(n_classes)
    for _ in range(40):
        n = int(rng.integers(5 * n_classes, 200))
        labels = np.concatenate([np.repeat(np.arange(n_classes), 5), rng.integers(0, n_classes, n - 5 * n_classes)])
        labels = rng.permutation(labels) * 3 + 7  # any label values, in any order
        seed = int(rng.integers(0, 10_000))
        _same(
            stratified_kfold(labels, 5, seed),
            StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros((n, 1)), labels),
        )


def test_plain_folds_are_scikit_learns():
    rng = np.random.default_rng(0)
    for n in [10, 11, 13, 48, 49, 160, 481]:
        seed = int(rng.integers(0, 10_000))
        _same(kfold(n, 5, seed), KFold(5, shuffle=True, random_state=seed).split(np.zeros((n, 1))))


def test_a_class_smaller_than_the_fold_count_is_refused():
    with pytest.raises(ValueError, match="at least 5 members"):
        stratified_kfold(np.array([0] * 10 + [1] * 4), 5, 0)
