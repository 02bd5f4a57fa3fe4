"""The spatial aggregate at any number of scenes: the same result whether the example arrays are held or read one key
at a time, whatever the rounds and batches the heads are fitted in; the flattened readout is scikit-learn's pipeline
with the solver its PCA picks (randomized beyond a few dozen scenes)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mmdiag.probes.spatial as spatial
from mmdiag.probes.spatial import heads
from mmdiag.probes.spatial.heads import HeadProblem, fit_predict
from mmdiag.probes.spatial.readouts import _flattened_features, pca_solver
from mmdiag.run.stored_arrays import StoredArrays


def _problems(seed: int) -> list[HeadProblem]:
    """Heads of mixed training sizes, widths and class counts, as the cross-validation makes them."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(36):
        n, classes, width = (38, 39, 33)[i % 3], (2, 3, 9)[i % 3 if i < 30 else 0], (8, 32)[i % 2]
        y = rng.integers(0, classes, n)
        x = rng.normal(size=(n, width)) + y[:, None] * 0.3
        out.append(HeadProblem(x, y, rng.normal(size=(9 + i % 2, width)), standardise=i % 4 != 0))
    return out


@pytest.mark.parametrize("regression", [False, True])
def test_a_heads_predictions_do_not_depend_on_its_batch(monkeypatch, regression):
    """No training row is padded, so each head computes the same whatever else is fitted with it: together, alone,
    in reverse order, or one per batch."""
    problems = _problems(3)
    if regression:
        problems = [HeadProblem(p.train_x, p.train_x[:, 0] + p.train_y, p.test_x, p.standardise) for p in problems]
    together = fit_predict(problems, regression)
    alone = [fit_predict([p], regression)[0] for p in problems]
    backwards = fit_predict(problems[::-1], regression)[::-1]
    monkeypatch.setattr(heads, "CHUNK_BYTES", 1)  # every batch holds one head
    chunked = fit_predict(problems, regression)
    for other in (alone, backwards, chunked):
        assert all(np.array_equal(a, b) for a, b in zip(together, other))


@pytest.mark.parametrize("shape", [(38, 1024), (41, 1024), (120, 400), (400, 300), (600, 900), (2500, 40)])
def test_the_pca_solver_is_the_one_scikit_learns_auto_policy_picks(shape):
    components = max(1, min(32, shape[0] - 1, shape[1]))
    x = np.random.default_rng(0).normal(size=shape)
    picked = PCA(n_components=components).fit(x)._fit_svd_solver
    assert pca_solver(shape, components) == ("randomized" if picked == "randomized" else "exact")


def test_flattened_features_beyond_a_few_dozen_scenes_are_the_randomized_pipelines():
    """At 240 scenes scikit-learn's PCA(32) runs its randomized SVD: our features span the subspace it finds (its
    own random draws, to round-off), which is far from the exact top 32 on these tokens, and the head predicts as
    on scikit-learn's features."""
    rng = np.random.default_rng(5)
    tokens = rng.normal(size=(240, 64, 16)).astype(np.float32)
    labels = rng.integers(0, 4, 240)
    tokens[:, 3, :4] += labels[:, None]
    train, test = np.arange(240) % 5 != 0, np.arange(240) % 5 == 0
    ours_train, ours_test = _flattened_features(tokens[train], tokens[test], seed=7)
    flat = tokens.reshape(240, -1).astype(np.float64)
    pipeline = make_pipeline(StandardScaler(), PCA(n_components=32, random_state=7)).fit(flat[train])
    assert pipeline[-1]._fit_svd_solver == "randomized"
    ref_train, ref_test = pipeline.transform(flat[train]), pipeline.transform(flat[test])
    basis = np.linalg.lstsq(ref_train, ours_train, rcond=None)[0]  # ours = theirs @ an orthogonal map
    np.testing.assert_allclose(ref_train @ basis, ours_train, atol=1e-8)
    np.testing.assert_allclose(ref_test @ basis, ours_test, atol=1e-8)
    np.testing.assert_allclose(basis.T @ basis, np.eye(32), atol=1e-8)
    exact = make_pipeline(StandardScaler(), PCA(n_components=32, svd_solver="full")).fit(flat[train])
    overlap = np.linalg.svd(exact[-1].components_ @ pipeline[-1].components_.T, compute_uv=False)
    assert overlap.min() < 0.9  # not the exact subspace: the solver matters, and this is scikit-learn's
    predicted = [
        LogisticRegression(max_iter=10_000, tol=1e-10).fit(a, labels[train]).predict(b)
        for a, b in ((ours_train, ours_test), (ref_train, ref_test))
    ]
    assert predicted[0].tolist() == predicted[1].tolist()


def _saved(tmp_path, arrays: list[dict[str, np.ndarray]]) -> list:
    paths = []
    for i, example in enumerate(arrays):
        paths.append(tmp_path / f"{i}.npz")
        np.savez(paths[-1], **example)
    return paths


def test_stored_arrays_hand_out_one_key_for_every_example(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [{"a": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=5)} for _ in range(7)]
    paths = _saved(tmp_path, arrays)
    held, streamed = StoredArrays(paths), StoredArrays(paths, resident_bytes=0)
    for stored in (held, streamed):
        assert len(stored) == 7 and stored.array_names() == ["a", "b"]
        np.testing.assert_array_equal(stored.column("a"), np.stack([a["a"] for a in arrays]))
        assert stored.column("a").dtype == np.float32 and stored.column_nbytes("b") == 7 * 5 * 8
        np.testing.assert_array_equal(stored[3]["b"], arrays[3]["b"])
    np.savez(paths[4], a=np.zeros((2, 3), dtype=np.float32), b=np.zeros(5))
    with pytest.raises(ValueError, match="example 4 has shape"):
        StoredArrays(paths, resident_bytes=0).column("a")


def _scenes(n: int, seed: int) -> tuple[list[dict], list[dict[str, np.ndarray]]]:
    """Records and arrays of a two-stage model whose tokens carry the object's position (the projector's less)."""
    rng = np.random.default_rng(seed)
    stages = ["vision_encoder", "projector"]
    records, arrays = [], []
    for i in range(n):
        cx, cy, rx, ry = rng.uniform(0.1, 0.9, 4)
        cell = f"{min(int(cy * 3), 2)},{min(int(cx * 3), 2)}"
        labels = {
            "colour": ("red", "blue")[i % 2],
            "shape": ("circle", "square", "triangle")[i % 3],
            "half": "left" if cx < 0.5 else "right",
            "grid_cell": cell,
            "control": f"{i % 3},{(i // 3) % 3}",
            "centre_x": float(cx),
            "centre_y": float(cy),
            "left_of": ("yes" if rx < cx else "no") if i % 7 else None,
            "above": "yes" if ry < cy else "no",
        }
        example = {}
        for j, stage in enumerate(stages):
            for suffix, (x, y) in (("", (cx, cy)), ("@pair", (rx - cx, ry - cy))):
                tokens = rng.normal(size=(8, 16)).astype(np.float32)
                tokens[int(x * 7.99) if x >= 0 else 0, :2] += 2.0 / (1 + j)
                tokens[:, 2] += (y if suffix else x) * (1.5 - j)
                example[stage + suffix] = tokens
                example["untrained:" + stage + suffix] = rng.normal(size=(8, 16)).astype(np.float32)
            example["similarity:" + stage] = example[stage] @ rng.normal(size=(16, 24)).astype(np.float32)
        records.append({"example_id": f"s{i}", "labels": labels, "stages": stages, "tokens": dict.fromkeys(stages, 8)})
        arrays.append(example)
    return records, arrays


class _Generative:
    kind = "generative"


def test_the_spatial_result_is_the_same_read_one_column_at_a_time(tmp_path, monkeypatch):
    """Held in memory in one round, or read key by key from the run folder a column per round with one head per
    batch: the same numbers, to the last bit."""
    records, arrays = _scenes(60, seed=1)
    probe = spatial.SpatialProbe(null_permutations=9)
    held = asdict(probe.aggregate(_Generative(), records, arrays))
    monkeypatch.setattr(spatial, "ROUND_BYTES", 1)
    monkeypatch.setattr(heads, "CHUNK_BYTES", 1)
    streamed = asdict(probe.aggregate(_Generative(), records, StoredArrays(_saved(tmp_path, arrays), resident_bytes=0)))
    assert streamed == held
    rows = held["scores"]["vision_encoder"]
    assert all(rows[task]["score"] is not None for task in held["tasks"])  # every task was scored
    assert rows["half"]["chance_from"].startswith("label-permutation null (9 permutations")
