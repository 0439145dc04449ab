r"""k-means with k-means++ seeding, in NumPy: the clustering baseline of `evaluation.clustering`.

Lloyd's algorithm minimises the inertia

```none
J(c, mu) = sum_n || x_n - mu_{c_n} ||^2
```

alternating c_n = argmin_k ||x_n - mu_k||^2 and mu_k = mean{x_n : c_n = k}, until no
assignment changes or the centres move by less than `tol` times the mean variance of
the features (scikit-learn's rule). The seeding is greedy k-means++ (Arthur &
Vassilvitskii, 2007): each new centre is the best, by the potential sum_n D(x_n)^2, of
2 + floor(log k) candidates drawn with probability D(x)^2 / sum D^2, D being the
distance to the nearest centre chosen so far. A cluster left empty takes the point
farthest from its centre. `n_init` seeded restarts; the lowest inertia wins.

Example:

```python
from keras_vae.evaluation import kmeans
result = kmeans.kmeans(x.reshape(len(x), -1), k=10, seed=0)
result.labels, result.centers, result.inertia
```

References:
  S. Lloyd. Least squares quantization in PCM. IEEE Trans. Information Theory, 1982.
  D. Arthur and S. Vassilvitskii. k-means++: the advantages of careful seeding. SODA 2007.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class KMeansResult:
    """A k-means partition.

    Attributes:
      labels: the cluster of each point, int64 [N].
      centers: the centres, float64 [k, D].
      inertia: sum of squared distances to the assigned centres (float).
      iterations: Lloyd iterations of the winning restart.
    """

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    iterations: int


def kmeans(x, k, seed=0, n_init=4, max_iter=100, tol=1e-4, chunk_size=8192):
    """Clusters the rows of `x` into k groups (k-means++ seeding, Lloyd iterations).

    Args:
      x: points [N, D] (any array; flattened to 2-D if it has more axes).
      k: the number of clusters, 1 <= k <= N.
      seed: int seed of the seeding (restart r uses a stream derived from it).
      n_init: seeded restarts; the lowest inertia is kept.
      max_iter: Lloyd iterations per restart at most.
      tol: stop when the centres' squared shift is below tol * mean feature variance.
      chunk_size: rows per distance computation (memory O(chunk_size * k)).

    Returns:
      A `KMeansResult`.

    Raises:
      ValueError: k out of 1..N, non-finite points, or bad n_init / max_iter.
    """
    x = np.asarray(x, "float64")
    x = x.reshape(len(x), -1)
    k, n_init, max_iter = int(k), int(n_init), int(max_iter)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)} (the number of points), got {k}.")
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be >= 1, got {n_init}, {max_iter}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has non-finite values (NaN or Inf).")
    threshold = float(tol) * float(np.mean(np.var(x, axis=0)))
    squared_norms = np.einsum("nd,nd->n", x, x)
    best = None
    for rng in (np.random.default_rng([int(seed), r]) for r in range(n_init)):
        centers = kmeans_plus_plus(x, k, rng, squared_norms)
        result = _lloyd(x, centers, squared_norms, max_iter, threshold, chunk_size)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def kmeans_plus_plus(x, k, rng, squared_norms=None):
    """Greedy k-means++ centres [k, D] for points x [N, D] (float64), drawn by `rng`."""
    squared_norms = np.einsum("nd,nd->n", x, x) if squared_norms is None else squared_norms
    trials = 2 + int(math.log(k))
    centers = [x[rng.integers(len(x))]]
    closest = _squared_distances(x, centers[0][None], squared_norms)[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: repeat one
            centers.append(x[rng.integers(len(x))])
            continue
        picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        picks = np.minimum(picks, len(x) - 1)
        candidate = np.minimum(closest[:, None],
                               _squared_distances(x, x[picks], squared_norms))
        winner = int(np.argmin(candidate.sum(axis=0)))
        centers.append(x[picks[winner]])
        closest = candidate[:, winner]
    return np.stack(centers)


def _lloyd(x, centers, squared_norms, max_iter, threshold, chunk_size):
    """Lloyd iterations from `centers`: a KMeansResult."""
    labels = None
    for iteration in range(1, max_iter + 1):
        new_labels, distances = _nearest(x, centers, squared_norms, chunk_size)
        new_centers = _means(x, new_labels, centers, distances)
        shift = float(np.sum((new_centers - centers) ** 2))
        converged = labels is not None and np.array_equal(labels, new_labels)
        centers, labels = new_centers, new_labels
        if converged or shift <= threshold:
            break
    labels, distances = _nearest(x, centers, squared_norms, chunk_size)
    return KMeansResult(labels=labels.astype("int64"), centers=centers,
                        inertia=float(distances.sum()), iterations=iteration)


def _means(x, labels, centers, distances):
    """The centres of a partition; an empty cluster takes the point farthest from its own."""
    k = len(centers)
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros_like(centers)
    for start in range(0, len(x), 8192):  # one-hot products: BLAS, not a Python loop
        part = slice(start, start + 8192)
        sums += (labels[part][None, :] == np.arange(k)[:, None]).astype(x.dtype) @ x[part]
    empty = np.nonzero(counts == 0)[0]
    out = sums / np.maximum(counts, 1)[:, None]
    if len(empty):
        far = np.argsort(-distances, kind="stable")[:len(empty)]
        out[empty] = x[far]
    return out


def _nearest(x, centers, squared_norms, chunk_size):
    """(index of the nearest centre [N], squared distance to it [N])."""
    labels = np.empty(len(x), "int64")
    distances = np.empty(len(x), "float64")
    for start in range(0, len(x), int(chunk_size)):
        part = slice(start, start + int(chunk_size))
        d = _squared_distances(x[part], centers, squared_norms[part])
        labels[part] = np.argmin(d, axis=1)
        distances[part] = d[np.arange(len(d)), labels[part]]
    return labels, distances


def _squared_distances(x, centers, squared_norms):
    """||x_n - c_k||^2 [N, K], clipped at 0 (the expansion can round below it)."""
    d = squared_norms[:, None] - 2.0 * (x @ centers.T) + np.einsum("kd,kd->k", centers,
                                                                   centers)[None]
    return np.maximum(d, 0.0)


__all__ = ["KMeansResult", "kmeans", "kmeans_plus_plus"]
