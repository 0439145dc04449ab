r"""Unsupervised clustering with a mixture prior, scored against labels, beside k-means.

A VAE whose prior is a mixture of C Gaussians (`prior="mixture"`, or the VampPrior's
pseudo-input components)

```none
p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)),    q(z|x) = N(z; m(x), diag(s(x)^2))
```

clusters x by the component that explains its latent. Under a factorised posterior
q(z, c|x) = q(z|x) q(c|x), the q(c|x) that maximises the ELBO is

```none
q(c|x) ∝ exp E_{q(z|x)}[log pi_c + log N(z; mu_c, sigma_c^2)]
log q(c|x) = log pi_c - sum_j [log sigma_cj + 0.5 log 2 pi
                               + ((m_j - mu_cj)^2 + s_j^2) / (2 sigma_cj^2)] + const
```

(closed form: E_q (z_j - mu)^2 = (m_j - mu)^2 + s_j^2). `assign` returns
argmax_c q(c|x) (method="expected", the default), or the responsibility p(c|z) at
z = m(x) (method="mean": the same without the s_j^2 term). VaDE (Jiang et al., 2017)
uses this assignment.

A model with a categorical latent (`keras_vae.GaussianMixtureVAE`, the GMVAE) has its own
q(y|x): `log_responsibilities` and `assign` return log q(y|x) and argmax_y q(y|x) for it.

`clustering(model, x, labels)` scores the assignment with the unsupervised accuracy
(best one-to-one matching, Hungarian), NMI and ARI (`matching`); the baselines are
k-means (`kmeans`) on the raw pixels (`kmeans_pixels`) and on the latent means of
any model, e.g. a plain VAE (`kmeans_latent`).

The module is callable: `keras_vae.evaluation.clustering(model, x, labels)` is
`keras_vae.evaluation.clustering.clustering(model, x, labels)`.

Example:

```python
import keras_vae
from keras_vae import evaluation
model = keras_vae.VAE(event_shape=(28, 28, 1), prior="mixture")   # 10 components
...  # fit
result = evaluation.clustering(model, x_test, y_test)
result.accuracy, result.nmi, result.ari
evaluation.clustering.kmeans_pixels(x_test, y_test).accuracy      # the baseline
```

References:
  Z. Jiang, Y. Zheng, H. Tan, B. Tang, H. Zhou. Variational Deep Embedding: an
    unsupervised and generative approach to clustering. IJCAI 2017.
  N. Dilokthanakul et al. Deep unsupervised clustering with Gaussian mixture
    variational autoencoders. arXiv:1611.02648, 2016.
"""

import dataclasses
import math
import sys
import types

import numpy as np

from keras_vae.evaluation import gaussian_mixture
from keras_vae.evaluation import kmeans as kmeans_lib
from keras_vae.evaluation import matching

METHODS = ("expected", "mean")


@dataclasses.dataclass
class ClusteringResult:
    """A partition scored against labels.

    Attributes:
      assignments: the cluster of each example, int64 [N].
      labels: the labels [N].
      method: how the clusters were made (e.g. 'mixture prior, E_q', 'k-means, pixels').
      accuracy: the unsupervised accuracy (best one-to-one map, Hungarian).
      nmi, ari: normalised mutual information, adjusted Rand index.
      mapping: {cluster: label} of that best map.
      num_clusters: the number of clusters the method could use (C or k).
    """

    assignments: np.ndarray
    labels: np.ndarray
    method: str
    accuracy: float
    nmi: float
    ari: float
    mapping: dict
    num_clusters: int

    @property
    def used_clusters(self):
        """The number of clusters that hold at least one example."""
        return int(len(np.unique(self.assignments)))

    def summary(self):
        return {"method": self.method, "accuracy": self.accuracy, "nmi": self.nmi,
                "ari": self.ari, "num_clusters": self.num_clusters,
                "used_clusters": self.used_clusters,
                "num_classes": int(len(np.unique(self.labels))),
                "num_examples": int(len(self.labels)),
                "mapping": {str(k): v for k, v in self.mapping.items()}}


def score(assignments, labels, method, num_clusters=None):
    """A `ClusteringResult` of any partition: accuracy, NMI and ARI against `labels`."""
    assignments, labels = np.asarray(assignments).astype("int64"), np.asarray(labels)
    mapping, matched = matching.best_mapping(assignments, labels)
    return ClusteringResult(
        assignments=assignments, labels=labels, method=method,
        accuracy=matched / len(labels),
        nmi=matching.normalized_mutual_information(assignments, labels),
        ari=matching.adjusted_rand_index(assignments, labels), mapping=mapping,
        num_clusters=int(num_clusters or len(np.unique(assignments))))


def mixture_components(model):
    """(log pi [C], mu [C, d], sigma [C, d]) of a model's mixture prior, float64 numpy.

    Raises:
      ValueError: the model is conditional, or its prior has no mixture components.
    """
    if getattr(model, "is_conditional", False):
        raise ValueError("clustering is unsupervised: a conditional model is given the label "
                         "(its prior's classes are the labels); cluster with an "
                         "unconditional model with prior='mixture'.")
    components = getattr(model.prior, "components", None)
    name = type(model.prior).__name__
    if components is None:
        raise ValueError(f"the prior {name} has no mixture components to cluster with: use "
                         "prior='mixture' (or 'vamp').")
    logits, loc, scale = components(encode=model.encode)
    if logits is None or int(loc.shape[0]) < 2:
        raise ValueError(f"the prior {name} has a single component: clustering needs a "
                         "mixture prior (prior='mixture' with num_components >= 2, or 'vamp').")
    logits = np.asarray(logits, "float64")
    log_pi = logits - logits.max()
    log_pi = log_pi - math.log(np.sum(np.exp(log_pi)))
    return log_pi, np.asarray(loc, "float64"), np.asarray(scale, "float64")


def log_responsibilities(model, x, batch_size=500, method="expected"):
    """log q(c|x) [N, C] (normalised over c) for the mixture prior's components.

    Args:
      model: a `keras_vae.VAE` with a mixture prior.
      x: images [N, *event_shape].
      batch_size: examples per encoder pass.
      method: 'expected' (E_q log pi_c N(z; mu_c, sigma_c), the module's formula) or
        'mean' (log p(c | z = E q(z|x))).

    Returns:
      float64 [N, C].

    Raises:
      ValueError: a prior without components, a conditional model, an unknown
        method, or data that do not fit the model.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    log_pi, mu, sigma = mixture_components(model)
    if hasattr(model, "categorical_log_probs"):  # a categorical latent: q(y|x) itself (GMVAE)
        return model.categorical_log_probs(x, batch_size)
    x = np.asarray(x)
    model.validate_inputs(x, "x")
    out = []
    for start in range(0, len(x), int(batch_size)):
        loc, scale = model.encoder_parameters(x[start:start + int(batch_size)])
        m = np.asarray(loc, "float64")[:, None, :]
        spread = (m - mu[None]) ** 2
        if method == "expected":
            spread = spread + np.asarray(scale, "float64")[:, None, :] ** 2
        log_joint = log_pi[None] - np.sum(np.log(sigma)[None] + 0.5 * math.log(2 * math.pi)
                                          + spread / (2.0 * sigma[None] ** 2), axis=-1)
        top = log_joint.max(axis=1, keepdims=True)
        out.append(log_joint - top - np.log(np.sum(np.exp(log_joint - top), axis=1,
                                                   keepdims=True)))
    return np.concatenate(out)


def assign(model, x, batch_size=500, method="expected"):
    """The mixture component of each example: argmax_c q(c|x), int64 [N].

    See `log_responsibilities` (Args, Raises) and the module docstring (the maths).
    """
    return np.argmax(log_responsibilities(model, x, batch_size, method), axis=1).astype("int64")


def clustering(model, x, labels, batch_size=500, method="expected"):
    """Clusters x by the model's mixture prior and scores it against `labels`.

    Args:
      model: a `keras_vae.VAE` with a mixture prior (C components).
      x: images [N, *event_shape].
      labels: the true classes [N] (used only for scoring).
      batch_size, method: see `log_responsibilities`.

    Returns:
      A `ClusteringResult` (accuracy, NMI, ARI, the best map).

    Raises:
      ValueError: see `log_responsibilities`; labels of another length.
    """
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise ValueError(f"labels must have one entry per example: {len(labels)} labels for "
                         f"{len(x)} examples.")
    assignments = assign(model, x, batch_size, method)
    kind = "q(y|x)" if hasattr(model, "categorical_log_probs") else f"mixture prior ({method})"
    return score(assignments, labels, kind,
                 num_clusters=len(mixture_components(model)[0]))


def kmeans_pixels(x, labels, k=None, seed=0, n_init=4):
    """Baseline: k-means (k-means++, `kmeans.kmeans`) on the flattened pixels.

    k defaults to the number of distinct labels.
    """
    labels = np.asarray(labels)
    k = int(k or len(np.unique(labels)))
    flat = np.asarray(x, "float64").reshape(len(x), -1)
    result = kmeans_lib.kmeans(flat, k, seed=seed, n_init=n_init)
    return score(result.labels, labels, "k-means, pixels", num_clusters=k)


def kmeans_latent(model, x, labels, k=None, seed=0, n_init=4, batch_size=500):
    """Baseline: k-means on the latent means E q(z|x) of `model` (e.g. a plain VAE)."""
    labels = np.asarray(labels)
    k = int(k or len(np.unique(labels)))
    means = latent_means(model, x, batch_size)
    result = kmeans_lib.kmeans(means, k, seed=seed, n_init=n_init)
    return score(result.labels, labels, "k-means, latent means", num_clusters=k)


def latent_means(model, x, batch_size=500):
    """E q(z|x) [N, d] float64 for an unconditional model (`encoder_parameters`' loc)."""
    if getattr(model, "is_conditional", False):
        raise ValueError("latent_means: a conditional model's encoder needs the label; "
                         "use an unconditional model.")
    x = np.asarray(x)
    model.validate_inputs(x, "x")
    return np.concatenate([np.asarray(model.encoder_parameters(x[i:i + int(batch_size)])[0],
                                      "float64") for i in range(0, len(x), int(batch_size))])


def initialize_mixture(model, x, seed=0, n_init=4, batch_size=500, min_std=0.05,
                       start="kmeans"):
    r"""Sets a mixture prior's components from the clusters of the latent means (VaDE's start).

    ```none
    start='kmeans':  mu_c = the centre of k-means cluster c of {E q(z|x_n)},
                     sigma_c = its per-unit std,  pi_c = its share of the examples
    start='gmm':     (pi, mu, sigma^2) of a diagonal Gaussian mixture fitted by EM
                     (`gaussian_mixture.fit`, each restart from k-means)
    ```

    Training from randomly placed components tends to leave components unused or
    split one class between them; placing them on the clusters the encoder already
    makes (after a few epochs) and training on gives far better clusters
    (Jiang et al., 2017, fit a GMM to a pre-trained encoder the same way).

    Args:
      model: a `keras_vae.VAE` whose prior is a `priors.MixtureOfGaussiansPrior`.
      x: images [N, *event_shape], N >= the number of components.
      seed, n_init: k-means's.
      batch_size: examples per encoder pass.
      min_std: the smallest sigma_cj set.
      start: 'kmeans' or 'gmm' (Jiang et al., 2017: the mixture's own maximum likelihood).

    Returns:
      The `kmeans.KMeansResult` or `gaussian_mixture.GaussianMixtureFit` used.

    Raises:
      ValueError: another prior, fewer examples than components, or another `start`.
    """
    from keras_vae import priors  # noqa: PLC0415 - keeps this module's import light

    if not isinstance(model.prior, priors.MixtureOfGaussiansPrior):
        raise ValueError("initialize_mixture needs prior='mixture' "
                         f"(a MixtureOfGaussiansPrior), got {type(model.prior).__name__}.")
    if start not in ("kmeans", "gmm"):
        raise ValueError(f"initialize_mixture: start must be 'kmeans' or 'gmm', got {start!r}.")
    prior = model.prior
    means = latent_means(model, x, batch_size)
    if start == "gmm":
        result = gaussian_mixture.fit(means, prior.num_components, seed=seed, n_init=n_init)
        counts, std = result.weights * len(means), np.sqrt(result.variances)
        centers = result.means
    else:
        result = kmeans_lib.kmeans(means, prior.num_components, seed=seed, n_init=n_init)
        counts = np.bincount(result.labels, minlength=prior.num_components)
        std = np.stack([means[result.labels == c].std(axis=0) if counts[c] > 1
                        else np.ones(means.shape[1]) for c in range(prior.num_components)])
        centers = result.centers
    std = np.maximum(std, float(min_std)) - prior.min_scale
    prior.loc.assign(centers.astype("float32"))
    prior.raw_scale.assign(np.log(np.expm1(std)).astype("float32"))  # softplus^-1
    if getattr(prior, "learn_weights", True):  # a uniform p(y) stays uniform
        prior.logits.assign(np.log(np.maximum(counts, 1) / len(means)).astype("float32"))
    return result


class _CallableModule(types.ModuleType):
    """This module, callable as its `clustering` function."""

    def __call__(self, model, x, labels, **kwargs):
        return clustering(model, x, labels, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "ClusteringResult", "METHODS", "score", "mixture_components", "log_responsibilities",
    "assign", "clustering", "initialize_mixture", "kmeans_pixels", "kmeans_latent", "latent_means",
]
