"""evaluation.gaussian_mixture: EM for a diagonal Gaussian mixture, against float64 references.

- On points drawn from a known 3-component mixture, the fit recovers its weights, means
  and variances, and its reported log-likelihood equals scipy's density of the fitted
  mixture (an independent computation).
- The fit is a fixed point of EM: one more E and M step from it changes nothing.
- The log-likelihood is never below that of the k-means start's own Gaussians.
- `initialize_mixture(start='gmm')` places a mixture prior on the fitted components.
- Bad input is refused with a clear error.
"""

import numpy as np
import pytest
from scipy import special, stats

import keras_vae
from keras_vae import priors
from keras_vae.evaluation import clustering, gaussian_mixture

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]])
STDS = np.array([[1.0, 0.5], [0.7, 1.5], [2.0, 1.0]])


def _points(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=WEIGHTS)
    return MEANS[labels] + STDS[labels] * rng.standard_normal((n, 2)), labels


def _mixture_log_density(z, fit):
    """log p(z_n) with scipy's multivariate normal: an independent float64 reference."""
    parts = [np.log(w) + stats.multivariate_normal(m, np.diag(v)).logpdf(z)
             for w, m, v in zip(fit.weights, fit.means, fit.variances)]
    return special.logsumexp(np.stack(parts, axis=1), axis=1)


def test_recovers_a_known_mixture_and_its_log_likelihood_matches_scipy():
    z, labels = _points()
    fit = gaussian_mixture.fit(z, 3, seed=0)
    order = np.argsort(fit.means[:, 0])  # components are found in any order
    truth = np.argsort(MEANS[:, 0])
    counts = len(z) * WEIGHTS[truth]  # within 5 standard errors of the truth:
    np.testing.assert_allclose(fit.weights[order], WEIGHTS[truth], atol=5 * 0.5 / len(z) ** 0.5)
    assert np.all(np.abs(fit.means[order] - MEANS[truth])
                  < 5 * STDS[truth] / np.sqrt(counts)[:, None])
    assert np.all(np.abs(np.sqrt(fit.variances[order]) / STDS[truth] - 1)
                  < 5 / np.sqrt(2 * counts)[:, None])
    np.testing.assert_allclose(fit.log_likelihood, np.mean(_mixture_log_density(z, fit)),
                               rtol=1e-9)
    assert fit.weights.sum() == pytest.approx(1.0)
    # The labels are the argmax responsibilities; on separated components they are the truth.
    relabel = {int(c): int(truth[i]) for i, c in enumerate(order)}
    assert np.mean(np.vectorize(relabel.get)(fit.labels) == labels) > 0.97


def test_the_fit_is_a_fixed_point_of_em():
    z, _ = _points(2000, seed=1)
    fit = gaussian_mixture.fit(z, 3, seed=0, tol=1e-12, max_iter=2000)
    joint = gaussian_mixture.log_joint(z, fit.weights, fit.means, fit.variances)
    r = np.exp(joint - special.logsumexp(joint, axis=1, keepdims=True))
    counts = r.sum(axis=0)
    means = r.T @ z / counts[:, None]
    variances = r.T @ (z * z) / counts[:, None] - means ** 2 + 1e-6
    np.testing.assert_allclose(counts / len(z), fit.weights, atol=1e-6)
    np.testing.assert_allclose(means, fit.means, atol=1e-5)
    np.testing.assert_allclose(variances, fit.variances, atol=1e-5)


def test_em_does_not_lose_to_its_kmeans_start():
    z, _ = _points(3000, seed=2)
    fit = gaussian_mixture.fit(z, 3, seed=0, n_init=1)
    start = gaussian_mixture.kmeans_lib.kmeans(z, 3, seed=0, n_init=1)
    counts = np.bincount(start.labels, minlength=3)
    means = np.stack([z[start.labels == c].mean(0) for c in range(3)])
    variances = np.stack([z[start.labels == c].var(0) for c in range(3)]) + 1e-6
    joint = gaussian_mixture.log_joint(z, counts / len(z), means, variances)
    assert fit.log_likelihood >= np.mean(special.logsumexp(joint, axis=1)) - 1e-9


def test_initialize_mixture_with_the_gmm_start_sets_the_prior():
    x = np.random.default_rng(0).random((60, 4, 4, 1)).astype("float32")
    model = keras_vae.VAE(latent_dim=2, event_shape=(4, 4, 1), encoder="mlp", seed=0,
                          prior=priors.MixtureOfGaussiansPrior(2, num_components=3))
    fit = clustering.initialize_mixture(model, x, seed=0, start="gmm")
    assert isinstance(fit, gaussian_mixture.GaussianMixtureFit)
    logits, loc, scale = (np.asarray(t) for t in model.prior.components())
    np.testing.assert_allclose(loc, fit.means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scale, np.maximum(np.sqrt(fit.variances), 0.05), rtol=1e-4)
    np.testing.assert_allclose(special.softmax(logits), fit.weights, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="start must be 'kmeans' or 'gmm'"):
        clustering.initialize_mixture(model, x, start="em")


def test_bad_input_gets_a_clear_error():
    z, _ = _points(10)
    with pytest.raises(ValueError, match="num_components must be in"):
        gaussian_mixture.fit(z, 11)
    z[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        gaussian_mixture.fit(z, 2)
