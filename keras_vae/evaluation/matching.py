r"""Scores of a partition against labels: the Hungarian matching, accuracy, NMI and ARI.

Everything is NumPy (float64) on the contingency table of two labelings of the same n
examples, n_ij = #{examples in cluster i with label j}, with row sums a_i and column
sums b_j.

Unsupervised accuracy: the best one-to-one map m from clusters to labels,

```none
ACC = max_m (1/n) sum_i n_{i, m(i)}
```

found by the Hungarian algorithm on the cost -n_ij (`linear_assignment`, the
shortest-augmenting-path form with dual potentials u, v, O(r^2 c) for r <= c).

Normalised mutual information (arithmetic normalisation, as scikit-learn's default):

```none
I(U; V) = sum_ij (n_ij / n) log(n n_ij / (a_i b_j)),   H(U) = -sum_i (a_i / n) log(a_i / n)
NMI     = I(U; V) / ((H(U) + H(V)) / 2)
```

Adjusted Rand index (Hubert & Arabie, 1985), with C(m) = m (m - 1) / 2:

```none
index = sum_ij C(n_ij),  expected = sum_i C(a_i) sum_j C(b_j) / C(n),
ARI   = (index - expected) / ((sum_i C(a_i) + sum_j C(b_j)) / 2 - expected)
```

Example:

```python
from keras_vae.evaluation import matching
matching.unsupervised_accuracy([0, 0, 1, 1], [1, 1, 0, 0])   # 1.0 (clusters renamed)
```

References:
  H. W. Kuhn. The Hungarian method for the assignment problem. Naval Research Logistics
    Quarterly, 1955. R. Jonker and A. Volgenant. A shortest augmenting path algorithm for
    dense and sparse linear assignment problems. Computing, 1987.
  L. Hubert and P. Arabie. Comparing partitions. Journal of Classification, 1985.
  A. Strehl and J. Ghosh. Cluster ensembles. JMLR, 2002.
"""

import numpy as np


def contingency(clusters, labels):
    """The contingency table [R, C] of two labelings (any hashable values), and their values.

    Args:
      clusters, labels: 1-D sequences of the same length n >= 1.

    Returns:
      (table int64 [R, C], cluster values [R], label values [C]), values sorted.

    Raises:
      ValueError: lengths differ, not 1-D, or empty.
    """
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    if clusters.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"clusters and labels must be 1-D, got shapes {clusters.shape} and "
                         f"{labels.shape}.")
    if len(clusters) != len(labels):
        raise ValueError(f"clusters and labels differ in length: {len(clusters)} vs "
                         f"{len(labels)}.")
    if len(clusters) == 0:
        raise ValueError("clusters and labels are empty.")
    cluster_values, rows = np.unique(clusters, return_inverse=True)
    label_values, cols = np.unique(labels, return_inverse=True)
    table = np.zeros((len(cluster_values), len(label_values)), "int64")
    np.add.at(table, (rows.ravel(), cols.ravel()), 1)
    return table, cluster_values, label_values


def linear_assignment(cost):
    """The minimum-cost assignment of rows to columns (each used at most once).

    Same contract as `scipy.optimize.linear_sum_assignment`: min(R, C) pairs,
    rows ascending.

    Args:
      cost: a finite 2-D array [R, C].

    Returns:
      (row indices, column indices), int64 arrays of length min(R, C).

    Raises:
      ValueError: not 2-D, or a non-finite entry.
    """
    cost = np.asarray(cost, "float64")
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}.")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost has a non-finite entry (NaN or Inf).")
    if cost.size == 0:
        return np.zeros(0, "int64"), np.zeros(0, "int64")
    transposed = cost.shape[0] > cost.shape[1]
    owner = _assign_rows(cost.T if transposed else cost)
    cols = np.nonzero(owner >= 0)[0]
    rows = owner[cols]
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype("int64"), cols[order].astype("int64")


def _assign_rows(cost):
    """Shortest augmenting paths for R <= C: owner[j] = row of column j, or -1."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, "int64")  # 1-based rows; column 0 is the virtual start
    way = np.zeros(m + 1, "int64")
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv, used = np.full(m + 1, np.inf), np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0, free = owner[j0], ~used
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv, np.inf)
            candidates[0] = np.inf
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    return owner[1:] - 1


def best_mapping(clusters, labels):
    """The one-to-one map cluster value -> label value that matches most examples.

    Returns:
      (dict {cluster: label} for the matched clusters, the number of examples matched).
    """
    table, cluster_values, label_values = contingency(clusters, labels)
    rows, cols = linear_assignment(-table)
    mapping = {cluster_values[r].item(): label_values[c].item() for r, c in zip(rows, cols)}
    return mapping, int(table[rows, cols].sum())


def unsupervised_accuracy(clusters, labels):
    """ACC: the fraction of examples whose cluster maps to their label under the best
    one-to-one map (clusters beyond the number of labels count as wrong)."""
    _, matched = best_mapping(clusters, labels)
    return matched / len(np.asarray(labels))


def normalized_mutual_information(clusters, labels):
    """NMI with the arithmetic mean of the entropies (1 when both have a single value)."""
    table, _, _ = contingency(clusters, labels)
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    p = table / table.sum()
    a, b = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float(np.sum(p[nz] * (np.log(p[nz]) - np.log(np.outer(a, b)[nz]))))
    h_u, h_v = -float(np.sum(a * np.log(a))), -float(np.sum(b * np.log(b)))
    if mi <= 0.0:
        return 0.0
    return min(1.0, mi / ((h_u + h_v) / 2.0))


def adjusted_rand_index(clusters, labels):
    """ARI (1 for identical partitions up to renaming, about 0 for independent ones)."""
    table, _, _ = contingency(clusters, labels)
    pairs = lambda m: m * (m - 1) / 2.0  # noqa: E731 - C(m, 2), elementwise
    n = float(table.sum())
    index = float(np.sum(pairs(table.astype("float64"))))
    sum_a = float(np.sum(pairs(table.sum(axis=1).astype("float64"))))
    sum_b = float(np.sum(pairs(table.sum(axis=0).astype("float64"))))
    expected = sum_a * sum_b / pairs(n) if n > 1 else 0.0
    maximum = (sum_a + sum_b) / 2.0
    if maximum == expected:  # one cluster each, or all singletons: a perfect match
        return 1.0
    return (index - expected) / (maximum - expected)


__all__ = [
    "contingency", "linear_assignment", "best_mapping", "unsupervised_accuracy",
    "normalized_mutual_information", "adjusted_rand_index",
]
