"""keras_vae.evaluation.matching and kmeans: checked by hand and against scipy / scikit-learn.

- the Hungarian matching on hand-made confusion matrices whose best map is known (one
  where the greedy choice is wrong, rectangular ones, ties), then against
  scipy.optimize.linear_sum_assignment on random matrices (equal optimal cost);
- NMI and ARI against sklearn.metrics on random labelings and on the limit cases;
- k-means++ / Lloyd against sklearn.cluster.KMeans on a toy set (same inertia, same
  partition), its seeding and its errors.
scipy and scikit-learn are test-only references.
"""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from keras_vae.evaluation import kmeans, matching


def test_hungarian_on_hand_made_confusion_matrices():
    # Greedy takes the 9 (row 0 -> col 0) and reaches 16 at best; the unique optimum is
    # 8 + 8 + 1 = 17 (of the six permutations: 11, 17, 16, 8, 15, 0).
    confusion = np.array([[9, 8, 0], [8, 1, 0], [0, 7, 1]])
    rows, cols = matching.linear_assignment(-confusion)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    assert confusion[rows, cols].sum() == 17
    confusion = np.array([[0, 5, 1], [6, 0, 0], [1, 0, 7]])  # a renamed identity
    rows, cols = matching.linear_assignment(-confusion)
    assert cols.tolist() == [1, 0, 2]
    # more clusters than labels: the extra cluster is left unmatched
    tall = np.array([[4, 0], [0, 3], [2, 2]])
    rows, cols = matching.linear_assignment(-tall)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    wide = tall.T
    rows, cols = matching.linear_assignment(-wide)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    clusters = np.repeat([2, 0, 1], [5, 6, 8])  # cluster 2 is label 0, ...
    labels = np.repeat([0, 1, 2], [5, 6, 8])
    labels[0] = 2
    mapping, matched = matching.best_mapping(clusters, labels)
    assert mapping == {2: 0, 0: 1, 1: 2} and matched == 18
    assert matching.unsupervised_accuracy(clusters, labels) == pytest.approx(18 / 19)


def test_hungarian_matches_scipy_on_random_matrices():
    rng = np.random.default_rng(0)
    for trial in range(200):
        r, c = rng.integers(1, 12, size=2)
        cost = (rng.integers(0, 4, (r, c)).astype(float) if trial % 2  # many ties
                else rng.normal(size=(r, c)))
        rows, cols = matching.linear_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        assert len(rows) == min(r, c) == len(set(cols.tolist())) == len(set(rows.tolist()))
        assert np.all(np.diff(rows) > 0)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), abs=1e-9)


def test_hungarian_rejects_bad_costs():
    with pytest.raises(ValueError, match="2-D"):
        matching.linear_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        matching.linear_assignment(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match="differ in length"):
        matching.contingency([0, 1], [0])


def test_nmi_and_ari_match_sklearn():
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(2, 80))
        a = rng.integers(0, rng.integers(1, 7), n)
        b = rng.integers(0, rng.integers(1, 7), n)
        if rng.random() < 0.3:  # correlated labelings
            b = np.where(rng.random(n) < 0.7, a, b)
        assert matching.normalized_mutual_information(a, b) == pytest.approx(
            normalized_mutual_info_score(b, a), abs=1e-10)
        assert matching.adjusted_rand_index(a, b) == pytest.approx(
            adjusted_rand_score(b, a), abs=1e-10)
    for a, b in (([0, 0, 0], [1, 1, 1]), ([0, 1, 2], [5, 6, 7]), ([0, 0, 1], [0, 0, 0]),
                 ([3], [4])):
        assert matching.normalized_mutual_information(a, b) == pytest.approx(
            normalized_mutual_info_score(b, a))
        assert matching.adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(b, a))


def _blobs(rng, n_per=80, k=5, dim=6, spread=1.2):
    centres = rng.normal(scale=6.0, size=(k, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(k), n_per)


def test_kmeans_matches_sklearn_on_a_toy_set():
    rng = np.random.default_rng(2)
    x, y = _blobs(rng)
    ours = kmeans.kmeans(x, 5, seed=0, n_init=4)
    ref = KMeans(5, n_init=4, random_state=0).fit(x)
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-9)
    assert matching.adjusted_rand_index(ours.labels, ref.labels_) == pytest.approx(1.0)
    assert matching.unsupervised_accuracy(ours.labels, y) == pytest.approx(1.0)
    d = ((x[:, None] - ours.centers[None]) ** 2).sum(-1)
    assert np.array_equal(ours.labels, d.argmin(1))  # a fixed point of Lloyd's map
    for c in range(5):
        assert np.allclose(ours.centers[c], x[ours.labels == c].mean(0))
    again = kmeans.kmeans(x, 5, seed=0, n_init=4)  # seeded: the same partition
    assert np.array_equal(again.labels, ours.labels)


def test_kmeans_plus_plus_and_errors():
    rng = np.random.default_rng(3)
    x, _ = _blobs(rng, n_per=30, k=4)
    centres = kmeans.kmeans_plus_plus(x, 4, np.random.default_rng(0))
    assert centres.shape == (4, x.shape[1])
    assert all(any(np.array_equal(c, row) for row in x) for c in centres)  # data points
    assert len({tuple(c) for c in centres}) == 4
    same = np.zeros((5, 2))  # fewer distinct points than k
    assert kmeans.kmeans(same, 3, seed=0).inertia == 0.0
    with pytest.raises(ValueError, match="k must be in 1..5"):
        kmeans.kmeans(same, 6)
    with pytest.raises(ValueError, match="non-finite"):
        kmeans.kmeans(np.array([[0.0], [np.nan]]), 1)
