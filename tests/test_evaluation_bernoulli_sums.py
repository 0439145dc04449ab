"""The evaluator's fused Bernoulli path equals the general one (float64 references)."""

import numpy as np
import pytest

import keras_vae
from keras_vae import evaluation
from keras_vae._backend import keras, tf
from keras_vae.evaluation import bernoulli_sums


def _reference(logits, x):
    """sum_j x_j l_j - softplus(l_j) in float64 numpy, [S, B]."""
    logits = np.asarray(logits, "float64")
    axes = tuple(range(2, logits.ndim))
    return np.sum(x[None] * logits - np.logaddexp(0.0, logits), axis=axes)


def _edge_case_logits(shape, rng):
    logits = rng.normal(scale=4.0, size=shape)
    flat = logits.reshape(-1)
    flat[:8] = [50.0, -50.0, 0.0, 49.9, -49.9, 1e-7, -1e-7, 30.0]
    return logits


@pytest.mark.parametrize("event_shape", [(28, 28, 1), (5, 3), (16,), (1,)])
def test_fused_sum_equals_the_direct_sum_in_float64(event_shape):
    rng = np.random.default_rng(0)
    logits = _edge_case_logits((3, 4) + event_shape, rng)
    x = (rng.random((4,) + event_shape) < 0.5).astype("float64")  # pixels exactly 0 and 1
    x.reshape(-1)[:3] = [0.25, 1.0, 0.0]                           # and a grey value
    fused = bernoulli_sums.log_likelihood(tf.constant(logits), tf.constant(x)).numpy()
    np.testing.assert_allclose(fused, _reference(logits, x), rtol=1e-12, atol=1e-10)


def test_fused_sum_in_float32_is_within_float32_rounding():
    rng = np.random.default_rng(1)
    logits = _edge_case_logits((50, 4, 28, 28, 1), rng).astype("float32")
    x = (rng.random((4, 28, 28, 1)) < 0.3).astype("float32")
    fused = bernoulli_sums.log_likelihood(tf.constant(logits), tf.constant(x)).numpy()
    reference = _reference(logits, x.astype("float64"))
    np.testing.assert_allclose(fused, reference, rtol=1e-6, atol=2e-4)


def _mnist_vae(**kwargs):
    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(16, activation="tanh")], name="encoder")
    decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(784),
                                keras.layers.Reshape((28, 28, 1))], name="decoder")
    return keras_vae.VAE(latent_dim=4, encoder=encoder, decoder=decoder, seed=0, **kwargs)


def test_covers_only_the_models_it_computes_exactly():
    assert bernoulli_sums.covers(_mnist_vae())
    assert not bernoulli_sums.covers(_mnist_vae(likelihood="gaussian"))
    assert not bernoulli_sums.covers(_mnist_vae(num_classes=10))
    assert not bernoulli_sums.covers(keras_vae.HierarchicalVAE(event_shape=(28, 28, 1),
                                                               seed=0))

    class Other(keras_vae.VAE):
        def _log_joint(self, x, draws, training):  # a subclass's own densities
            return super()._log_joint(x, draws, training)

    assert not bernoulli_sums.covers(Other(event_shape=(28, 28, 1), seed=0))


def test_terms_equal_compute_terms_on_the_same_draws():
    model = _mnist_vae()
    x = tf.constant((np.random.default_rng(2).random((6, 28, 28, 1)) < 0.4).astype("float32"))
    fast = bernoulli_sums.terms(model, x, 7, keras.random.SeedGenerator(5))
    general = model.compute_terms(x, num_samples=7, seed=keras.random.SeedGenerator(5))
    for name in ("log_prior", "log_posterior", "kl"):
        np.testing.assert_array_equal(getattr(fast, name).numpy(), getattr(general, name).numpy())
    np.testing.assert_allclose(fast.log_likelihood.numpy(), general.log_likelihood.numpy(),
                               rtol=2e-6, atol=1e-4)


def _general_log_weights(model, x, batch_size, chunks_per_batch, seed):
    """log w [k, N] (float64) of model.compute_terms, with the evaluator's seed path."""
    generator = keras.random.SeedGenerator(seed)
    parts = []
    for start in range(0, len(x), batch_size):
        batch = tf.constant(x[start:start + batch_size])
        parts.append(np.concatenate([
            model.compute_terms(batch, num_samples=c, seed=generator).log_weights().numpy()
            for c in chunks_per_batch]))
    return np.concatenate(parts, axis=1).astype("float64")


@pytest.mark.parametrize("k, batch_size, chunk_size", [(23, 5, 23), (23, 12, 10), (23, 3, 7)])
def test_log_likelihood_of_a_bernoulli_model_equals_the_unchunked_float64_sum(
        k, batch_size, chunk_size):
    model = _mnist_vae()
    x = (np.random.default_rng(3).random((12, 28, 28, 1)) < 0.3).astype("float32")
    result = evaluation.log_likelihood(model, x, k=k, batch_size=batch_size,
                                       chunk_size=chunk_size, seed=4)
    chunks = [chunk_size] * (k // chunk_size) + ([k % chunk_size] if k % chunk_size else [])
    log_w = _general_log_weights(model, x, batch_size, chunks, seed=4)  # [k, N]
    top = log_w.max(axis=0)
    reference = top + np.log(np.mean(np.exp(log_w - top), axis=0))
    np.testing.assert_allclose(result.values, reference, rtol=2e-6, atol=2e-4)
    assert result.standard_error == pytest.approx(
        reference.std(ddof=1) / np.sqrt(len(reference)), rel=1e-4)
    weights = np.exp(log_w - top)
    weights /= weights.sum(axis=0)
    np.testing.assert_allclose(result.ess, 1.0 / np.sum(weights ** 2, axis=0), rtol=1e-3)


def test_bounds_of_a_bernoulli_model_equal_the_unchunked_float64_sums():
    model = _mnist_vae()
    x = (np.random.default_rng(4).random((8, 28, 28, 1)) < 0.3).astype("float32")
    result = evaluation.bounds(model, x, k=9, batch_size=8, chunk_size=4, seed=6)
    generator = keras.random.SeedGenerator(6)
    terms = [model.compute_terms(tf.constant(x), num_samples=c, seed=generator)
             for c in (4, 4, 1)]
    reconstruction = np.concatenate(
        [t.log_likelihood.numpy() for t in terms]).astype("float64").mean(axis=0)
    kl = terms[0].kl.numpy().astype("float64")  # analytic, the same for every chunk
    log_w = np.concatenate([t.log_weights().numpy() for t in terms]).astype("float64")
    top = log_w.max(axis=0)
    np.testing.assert_allclose(result.reconstruction, reconstruction, rtol=2e-6, atol=2e-4)
    np.testing.assert_allclose(result.kl, kl, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.elbo, reconstruction - kl, rtol=2e-6, atol=2e-4)
    np.testing.assert_allclose(
        result.iwae, top + np.log(np.mean(np.exp(log_w - top), axis=0)), rtol=2e-6, atol=2e-4)
