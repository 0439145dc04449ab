"""keras_vae.noise: the step's normals and uniforms, against TF's draws and float64 references.

Outside XLA the draws are TF's (`keras.random.normal`, `tf.random.stateless_uniform`).
Under XLA a normal is sqrt(2) erfinv(x) on ThreeFry's symmetric grid x = (2j+1)/2^23 - 1:
checked point by point against the float64 inverse CDF over the whole grid, and as a
sample (Kolmogorov-Smirnov, moments, tails, independence) with bounds from its size.
"""

import numpy as np
import pytest
import scipy.special
import scipy.stats
from keras.src.random.seed_generator import draw_seed

import keras_vae
from keras_vae import densities, noise
from keras_vae._backend import keras, tf

GRID = 2 ** 23


def _xla(fn):
    return tf.function(fn, jit_compile=True)


def test_outside_xla_the_draws_are_tensorflows():
    a = keras.random.normal((50, 7), seed=keras.random.SeedGenerator(5)).numpy()
    b = noise.standard_normal((50, 7), seed=keras.random.SeedGenerator(5)).numpy()
    np.testing.assert_array_equal(a, b)
    graph = tf.function(lambda: noise.standard_normal((50, 7), seed=11))
    want = tf.random.stateless_normal((50, 7), seed=draw_seed(11), alg="philox")
    np.testing.assert_array_equal(graph().numpy(), want.numpy())
    seed = tf.constant([3, 9], "int64")
    np.testing.assert_array_equal(noise.uniform((4, 5), seed).numpy(),
                                  tf.random.stateless_uniform((4, 5), seed=seed).numpy())
    assert densities.standard_normal is noise.standard_normal  # its old home still works


def test_under_xla_a_normal_is_the_inverse_cdf_of_threefrys_grid():
    shape, seed = (20, 30, 50), 7
    eps = _xla(lambda: noise.standard_normal(shape, seed=seed))().numpy()
    grid = _xla(lambda: tf.random.stateless_uniform(
        shape, seed=noise._int32_seed(seed), minval=-1.0 + 2.0 ** -23, maxval=1.0 + 2.0 ** -23,
        alg="threefry"))().numpy().astype(np.float64)
    j = (grid + 1.0) * GRID / 2 - 0.5  # x = (2j + 1) / 2^23 - 1 with an integer j
    np.testing.assert_array_equal(j, np.round(j))
    assert j.min() >= 0 and j.max() <= GRID - 1
    reference = scipy.special.ndtri((grid + 1.0) / 2.0)  # float64 Phi^{-1}
    np.testing.assert_allclose(eps, reference, rtol=0, atol=3e-5)
    assert eps.dtype == np.float32
    as64 = _xla(lambda: noise.standard_normal(shape, seed=seed, dtype="float64"))().numpy()
    assert as64.dtype == np.float64 and np.array_equal(as64, eps.astype(np.float64))


def test_xlas_erfinv_is_within_3e_5_of_the_float64_inverse_cdf_on_the_whole_grid():
    j = np.arange(GRID, dtype=np.float64)
    x = (2.0 * j + 1.0) / GRID - 1.0
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)  # exact in float32
    eps = _xla(lambda t: tf.constant(np.sqrt(2.0), "float32") * tf.math.erfinv(t))(
        tf.constant(x.astype(np.float32))).numpy()
    error = np.abs(eps - scipy.special.ndtri((x + 1.0) / 2.0))
    assert error.max() < 3e-5, (error.max(), x[error.argmax()])
    assert np.all(np.isfinite(eps)) and abs(eps.max() - 5.2947) < 1e-3 and eps.min() == -eps.max()


def test_under_xla_the_normals_are_a_standard_normal_sample():
    n = 1_000_000
    generator = keras.random.SeedGenerator(3)
    draw = _xla(lambda: noise.standard_normal((2, n // 2), seed=generator))
    first, second = draw().numpy(), draw().numpy()  # the generator advances between calls
    eps = first.ravel().astype(np.float64)
    assert scipy.stats.kstest(eps, "norm").pvalue > 1e-3
    se = 1.0 / np.sqrt(n)
    assert abs(eps.mean()) < 5 * se and abs(eps.var() - 1.0) < 5 * np.sqrt(2.0) * se
    assert abs(scipy.stats.skew(eps)) < 5 * np.sqrt(6.0) * se
    tail = np.mean(np.abs(eps) > 3.0)  # 2 (1 - Phi(3)) = 0.0027
    p3 = 2 * scipy.stats.norm.sf(3.0)
    assert abs(tail - p3) < 5 * np.sqrt(p3 * (1 - p3) / n)
    # Independent of the next draw and across the two rows of one draw: |r| < 5 / sqrt(m).
    for a, b in ((first.ravel(), second.ravel()), (first[0], first[1]),
                 (first[0, 1:], first[0, :-1])):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)


def test_under_xla_a_uniform_is_threefrys_and_uniform():
    seed = tf.constant([5, 1], "int64")
    u = _xla(lambda: noise.uniform((1000, 500), seed))().numpy()
    want = _xla(lambda: tf.random.stateless_uniform((1000, 500), seed=seed, alg="threefry"))()
    np.testing.assert_array_equal(u, want.numpy())
    assert u.min() >= 0.0 and u.max() < 1.0
    assert scipy.stats.kstest(u.ravel()[:200_000], "uniform").pvalue > 1e-3


@pytest.mark.parametrize("jit_compile", [True, False])
def test_a_reparameterised_draw_is_a_pure_function_of_the_seed(jit_compile):
    model = keras_vae.VAE(encoder="mlp", latent_dim=3, event_shape=(4, 4, 1), seed=0)
    x = np.random.default_rng(0).random((5, 4, 4, 1)).astype("float32")
    terms = tf.function(lambda s: model.compute_terms(x, num_samples=4, seed=s).log_posterior,
                        jit_compile=jit_compile)
    a, b, c = terms(11), terms(11), terms(12)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.all(np.isfinite(a.numpy())) and not np.allclose(a.numpy(), c.numpy())
