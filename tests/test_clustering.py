"""keras_vae.evaluation.clustering: the assignment's maths, its errors, and clusters that beat
k-means on raw pixels.

- log q(c|x) of method='expected' against Gauss-Hermite quadrature of
  E_q log pi_c N(z; mu_c, sigma_c) (exact for a quadratic, independent of the closed form),
  and method='mean' against scipy's Gaussian densities at z = E q(z|x);
- `model.cluster(x)` is `assign`; VampPrior's components cluster too; a prior without
  components, a conditional model and a bad method get clear errors;
- a mixture-prior VAE, trained on a small labelled MNIST set (1,500 digits 3, 5, 8) with its components placed by
  `initialize_mixture`, clusters its digits more accurately than k-means on the pixels.
"""

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp
from scipy.stats import norm

import keras_vae
from keras_vae import evaluation, priors
from keras_vae._backend import keras
from keras_vae.evaluation import clustering

SHAPE = (6, 6, 1)


def _mixture_model(num_components=4, latent_dim=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras_vae.VAE(latent_dim=latent_dim, event_shape=SHAPE, encoder="mlp",
                         prior=priors.MixtureOfGaussiansPrior(latent_dim,
                                                              num_components=num_components),
                         seed=seed)


def _reference(model, x, method):
    """log q(c|x) [N, C] by quadrature (expected) or scipy densities at the mean."""
    logits, loc, scale = (np.asarray(v, "float64") for v in model.prior.components())
    m, s = (np.asarray(v, "float64") for v in model.encoder_parameters(x))
    nodes, weights = hermegauss(5)  # E_{N(0,1)} f(e) = sum_i w_i f(e_i) / sqrt(2 pi)
    weights = weights / np.sqrt(2 * np.pi)
    out = np.zeros((len(x), len(logits)))
    for n in range(len(x)):
        for c in range(len(logits)):
            if method == "mean":
                value = norm.logpdf(m[n], loc[c], scale[c]).sum()
            else:
                z = m[n][:, None] + s[n][:, None] * nodes[None]  # [d, nodes]
                value = np.sum(norm.logpdf(z, loc[c][:, None], scale[c][:, None]) @ weights)
            out[n, c] = logits[c] - logsumexp(logits) + value
    return out - logsumexp(out, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["expected", "mean"])
def test_log_responsibilities_against_quadrature_and_scipy(method):
    model = _mixture_model()
    model.prior.logits.assign(np.array([0.5, -0.3, 0.0, 1.0], "float32"))
    model.prior.raw_scale.assign(np.random.default_rng(0).normal(0, 0.5, (4, 3))
                                 .astype("float32"))
    x = np.random.default_rng(1).random((7,) + SHAPE).astype("float32")
    got = clustering.log_responsibilities(model, x, batch_size=3, method=method)
    assert got.shape == (7, 4)
    np.testing.assert_allclose(got, _reference(model, x, method), atol=1e-4)
    np.testing.assert_allclose(np.exp(got).sum(1), 1.0, atol=1e-10)
    assert np.array_equal(clustering.assign(model, x, method=method), got.argmax(1))


def test_model_cluster_is_assign_and_vamp_clusters():
    model = _mixture_model()
    x = np.random.default_rng(2).random((9,) + SHAPE).astype("float32")
    assert np.array_equal(np.asarray(model.cluster(x)), clustering.assign(model, x))
    keras.utils.set_random_seed(0)
    vamp = keras_vae.VAE(latent_dim=2, event_shape=SHAPE, encoder="mlp",
                         prior=priors.VampPrior(2, SHAPE, num_components=5))
    labels = clustering.assign(vamp, x)
    assert labels.shape == (9,) and labels.min() >= 0 and labels.max() < 5


def test_clustering_errors():
    x = np.random.default_rng(3).random((4,) + SHAPE).astype("float32")
    plain = keras_vae.VAE(latent_dim=2, event_shape=SHAPE, encoder="mlp")
    with pytest.raises(ValueError, match="no mixture components|single component"):
        plain.cluster(x)
    with pytest.raises(ValueError, match="single component"):
        clustering.assign(_mixture_model(num_components=1), x)
    with pytest.raises(ValueError, match="method must be one of"):
        clustering.assign(_mixture_model(), x, method="mode")
    with pytest.raises(ValueError, match="one entry per example"):
        evaluation.clustering(_mixture_model(), x, [0, 1])
    conditional = keras_vae.VAE(latent_dim=2, event_shape=SHAPE, encoder="mlp",
                                num_classes=3)
    with pytest.raises(ValueError, match="unsupervised"):
        clustering.assign(conditional, x)
    with pytest.raises(ValueError, match="MixtureOfGaussiansPrior"):
        clustering.initialize_mixture(plain, x)


def test_mixture_vae_clusters_better_than_kmeans_on_pixels():
    (x_train, y_train), _ = keras.datasets.mnist.load_data()
    keep = np.isin(y_train, CLASSES)
    x = (x_train[keep][:EXAMPLES, ..., None] / 255.0).astype("float32")
    y = y_train[keep][:EXAMPLES]
    pixels = clustering.kmeans_pixels(x, y, seed=0)
    keras.utils.set_random_seed(0)
    model = keras_vae.VAE(latent_dim=LATENT, event_shape=(28, 28, 1), encoder="mlp",
                          prior=priors.MixtureOfGaussiansPrior(LATENT,
                                                               num_components=len(CLASSES)),
                          seed=0)
    model.initialize_output_bias(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=100, epochs=EPOCHS[0], verbose=0)
    clustering.initialize_mixture(model, x, seed=0)
    model.fit(x, batch_size=100, epochs=EPOCHS[1], verbose=0)
    result = evaluation.clustering(model, x, y)
    print(f"mixture VAE {result.accuracy:.3f} (NMI {result.nmi:.3f}), k-means on pixels "
          f"{pixels.accuracy:.3f} (NMI {pixels.nmi:.3f}), {len(x)} digits {CLASSES}")
    assert result.num_clusters == len(CLASSES) and 0 <= result.ari <= 1
    assert result.accuracy > pixels.accuracy + 0.05
    assert result.summary()["accuracy"] == result.accuracy


CLASSES = (3, 5, 8)  # the digits k-means on pixels confuses most
EXAMPLES = 1500
LATENT = 4
EPOCHS = (8, 8)  # before and after `initialize_mixture`
