"""keras_vae.evaluation.probe: the logistic regression against scikit-learn, PCA against
numpy's SVD, and the probe of a small trained VAE beats chance and reports PCA's.

scikit-learn is a test-only reference: with C = 1 / (N lambda) its L2-regularised
multinomial logistic regression minimises the same objective as the probe, so the
weights agree (the biases up to the softmax's common shift).
"""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import keras_vae
from keras_vae import evaluation
from keras_vae._backend import keras
from keras_vae.evaluation import probe


def _features(rng, n=400, d=5, classes=3):
    means = rng.normal(scale=1.5, size=(classes, d))
    y = rng.integers(0, classes, n)
    return means[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d), y


def test_logistic_regression_matches_sklearn():
    rng = np.random.default_rng(0)
    x, y = _features(rng)
    l2 = 1e-2
    fit = probe.fit_logistic_regression(x, y, l2=l2, max_iter=2000, tol=1e-10)
    f = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=1.0 / (len(x) * l2), tol=1e-12, max_iter=10000).fit(f, y)
    assert np.abs(fit.weights - ref.coef_.T).max() < 1e-5
    centred = lambda b: b - b.mean()  # noqa: E731
    assert np.abs(centred(fit.bias) - centred(ref.intercept_)).max() < 1e-5
    assert np.array_equal(fit.predict(x), ref.predict(f))
    again = probe.fit_logistic_regression(x, y, l2=l2, max_iter=2000, tol=1e-10)
    assert np.array_equal(again.weights, fit.weights)  # deterministic


def test_lbfgs_minimises_a_quadratic():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    theta, _ = probe.lbfgs(lambda t: (0.5 * t @ a @ t - b @ t, a @ t - b), np.zeros(2),
                           tol=1e-12)
    assert np.allclose(theta, np.linalg.solve(a, b), atol=1e-9)


def test_pca_spans_numpys_top_singular_vectors():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    mean, components = probe.pca(x, 3)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    # the same subspace: the projector onto it is the same
    assert np.allclose(components @ components.T, vt[:3].T @ vt[:3], atol=1e-8)
    assert probe.project(x, mean, components).shape == (200, 3)
    with pytest.raises(ValueError, match="dim must be in 1..6"):
        probe.pca(x, 7)


def test_probe_errors():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least two classes"):
        probe.fit_logistic_regression(rng.normal(size=(5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="differ in length"):
        probe.fit_logistic_regression(rng.normal(size=(5, 2)), np.zeros(4))
    model = keras_vae.VAE(latent_dim=2, event_shape=(4, 4, 1), encoder="mlp")
    x = rng.random((6, 4, 4, 1)).astype("float32")
    with pytest.raises(ValueError, match="one label per example"):
        evaluation.linear_probe(model, x, np.zeros(5), x, np.zeros(6))


def test_probe_of_a_trained_vae_beats_chance_and_reports_pca(mnist_binary):
    x_train, y_train, x_test, y_test = mnist_binary
    x_train, y_train = x_train[:1000], y_train[:1000]
    keras.utils.set_random_seed(0)
    model = keras_vae.VAE(latent_dim=8, event_shape=(28, 28, 1), encoder="mlp", seed=0)
    model.initialize_output_bias(x_train)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x_train, batch_size=100, epochs=5, verbose=0)
    result = evaluation.linear_probe(model, x_train, y_train, x_test, y_test)
    summary = result.summary()
    print(summary)
    assert result.latent_dim == 8 and result.num_classes == 10 and result.num_test == 500
    assert result.chance < 0.2
    assert result.latent_accuracy > 3 * result.chance  # chance is ~11 %
    assert 3 * result.chance < result.pca_accuracy < 1.0  # PCA-8 on the same probe
    assert result.pixel_accuracy > result.pca_accuracy - 0.05
    assert set(summary) >= {"latent_accuracy", "pca_accuracy", "pixel_accuracy", "chance"}
