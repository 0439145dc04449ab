r"""A diagonal Gaussian mixture fitted by EM, in NumPy: VaDE's start for a mixture prior.

```none
p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2))
E step:  r_nc = pi_c N(z_n; mu_c, sigma_c^2) / sum_c' pi_c' N(z_n; mu_c', sigma_c'^2)
M step:  N_c = sum_n r_nc,  pi_c = N_c / N,  mu_c = sum_n r_nc z_n / N_c,
         sigma_c^2 = sum_n r_nc (z_n - mu_c)^2 / N_c + reg
```

Each restart starts from a k-means partition (`kmeans.kmeans`, its own seed) and
iterates until the mean log-likelihood gains less than `tol`; the restart with the
highest log-likelihood wins. Every step is in float64; the log-densities go through
log-sum-exp, so far-away points do not underflow.

Example:

```python
from keras_vae.evaluation import gaussian_mixture
fit = gaussian_mixture.fit(z, num_components=10, seed=0)
fit.weights, fit.means, fit.variances, fit.log_likelihood, fit.labels
```

References:
  A. P. Dempster, N. M. Laird and D. B. Rubin. Maximum likelihood from incomplete data
  via the EM algorithm. JRSS B, 1977.
  Z. Jiang, Y. Zheng, H. Tan, B. Tang and H. Zhou. Variational Deep Embedding: an
  unsupervised and generative approach to clustering. IJCAI 2017 (the GMM start, Sec. 3).
"""

import dataclasses

import numpy as np

from keras_vae.evaluation import kmeans as kmeans_lib


@dataclasses.dataclass
class GaussianMixtureFit:
    """A fitted diagonal Gaussian mixture.

    Attributes:
      weights: pi, float64 [C] (sums to 1).
      means: mu, float64 [C, D].
      variances: sigma^2, float64 [C, D].
      log_likelihood: mean log p(z_n) over the fitted points (float).
      labels: argmax_c r_nc of each fitted point, int64 [N].
      iterations: EM iterations of the winning restart.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihood: float
    labels: np.ndarray
    iterations: int


def log_joint(z, weights, means, variances):
    """log pi_c + log N(z_n; mu_c, diag(sigma_c^2)), float64 [N, C]."""
    z = np.asarray(z, "float64")
    precision = 1.0 / variances
    # ||z - mu||^2_P expanded so that the [N, C, D] difference is never formed.
    quadratic = ((z * z) @ precision.T - 2.0 * z @ (means * precision).T
                 + np.sum(means * means * precision, axis=1)[None])
    log_norm = -0.5 * np.sum(np.log(2.0 * np.pi * variances), axis=1)
    return np.log(weights)[None] + log_norm[None] - 0.5 * quadratic


def _log_sum_exp(a):
    top = np.max(a, axis=1, keepdims=True)
    return top[:, 0] + np.log(np.sum(np.exp(a - top), axis=1))


def _em(z, labels, num_components, max_iter, tol, reg):
    responsibilities = np.eye(num_components)[labels]
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        counts = responsibilities.sum(axis=0) + 1e-12
        weights = counts / len(z)
        means = responsibilities.T @ z / counts[:, None]
        second = responsibilities.T @ (z * z) / counts[:, None]
        variances = np.maximum(second - means * means, 0.0) + reg
        joint = log_joint(z, weights, means, variances)
        total = _log_sum_exp(joint)
        responsibilities = np.exp(joint - total[:, None])
        log_likelihood = float(np.mean(total))
        if log_likelihood - previous < tol:
            break
        previous = log_likelihood
    return GaussianMixtureFit(weights, means, variances, log_likelihood,
                              np.argmax(joint, axis=1), iteration)


def fit(z, num_components, seed=0, n_init=4, max_iter=300, tol=1e-6, reg=1e-6):
    """Fits a C-component diagonal Gaussian mixture to the rows of `z` by EM.

    Args:
      z: points [N, D] (any array; flattened to 2-D if it has more axes).
      num_components: C, 1 <= C <= N.
      seed: int seed; restart r starts from k-means with seed `seed * 1000 + r`.
      n_init: restarts; the highest mean log-likelihood is kept.
      max_iter: EM iterations per restart at most.
      tol: stop when the mean log-likelihood gains less than this.
      reg: added to every variance (keeps a component on few points proper).

    Returns:
      A `GaussianMixtureFit`.

    Raises:
      ValueError: fewer points than components, or a non-finite point.
    """
    z = np.asarray(z, "float64").reshape(len(z), -1)
    num_components = int(num_components)
    if not 1 <= num_components <= len(z):
        raise ValueError(f"gaussian_mixture.fit: num_components must be in [1, {len(z)}] "
                         f"(the number of points), got {num_components}.")
    if not np.all(np.isfinite(z)):
        raise ValueError("gaussian_mixture.fit: z has NaN or infinite values.")
    best = None
    for restart in range(max(1, int(n_init))):
        start = kmeans_lib.kmeans(z, num_components, seed=seed * 1000 + restart, n_init=1)
        result = _em(z, start.labels, num_components, int(max_iter), float(tol), float(reg))
        if best is None or result.log_likelihood > best.log_likelihood:
            best = result
    return best


__all__ = ["GaussianMixtureFit", "fit", "log_joint"]
