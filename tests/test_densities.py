"""keras_vae.densities: the closed-form log-densities equal their TFP parents (float64)."""

import numpy as np
import pytest

import keras_vae
from keras_vae import densities, training
from keras_vae._backend import keras, tf, tfd


def test_bernoulli_log_prob_equals_tfp_in_float64_with_extreme_logits():
    logits_np = np.array([-50.0, -20.0, -1.0, 0.0, 0.5, 3.0, 20.0, 50.0])
    logits = tf.constant(logits_np, tf.float64)
    for x in (np.zeros_like(logits_np), np.ones_like(logits_np), np.full_like(logits_np, 0.3)):
        fast = densities.Bernoulli(logits=logits, dtype=tf.float64).log_prob(x).numpy()
        ref = tfd.Bernoulli(logits=logits, dtype=tf.float64).log_prob(x).numpy()
        np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
        # and against numpy's closed form of -binary cross-entropy
        np.testing.assert_allclose(fast, x * logits_np - np.logaddexp(0.0, logits_np),
                                   rtol=1e-12)


def test_normal_log_prob_equals_tfp_in_float64():
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(4, 3)) * 10
    scale = np.exp(rng.normal(size=(4, 3)) * 3)  # 1e-4 .. 1e4
    x = rng.normal(size=(5, 4, 3)) * 30
    loc_t, scale_t = tf.constant(loc), tf.constant(scale)
    fast = densities.Normal(loc_t, scale_t).log_prob(x).numpy()
    ref = tfd.Normal(loc_t, scale_t).log_prob(x).numpy()
    np.testing.assert_allclose(fast, -0.5 * ((x - loc) / scale) ** 2 - np.log(scale)
                               - 0.5 * np.log(2 * np.pi), rtol=1e-12)
    np.testing.assert_allclose(fast, ref, rtol=1e-10)
    # the analytic KL TFP registers for its parent still applies
    kl = tfd.kl_divergence(densities.Normal(loc_t, scale_t),
                           densities.Normal(tf.constant(0.0, tf.float64), 1.0)).numpy()
    np.testing.assert_allclose(kl, 0.5 * (loc**2 + scale**2 - 1) - np.log(scale), rtol=1e-10)


@pytest.mark.parametrize("base", ["bernoulli", "normal", "continuous_bernoulli"])
def test_flat_independent_equals_tfp_independent_in_float64(base):
    rng = np.random.default_rng(2)
    params = rng.normal(size=(3, 2, 4, 5, 1)) * 20
    params[0, 0, :2, :2, 0] = [[50.0, -50.0], [1e-3, -1e-3]]  # extreme and tiny logits
    p = tf.constant(params)
    scale = tf.constant(np.exp(rng.normal(size=(4, 5, 1)) * 6))  # ~1e-8 .. 1e8
    x = rng.random((2, 4, 5, 1))
    if base == "bernoulli":
        x = (x < 0.5).astype("float64")
        fast = densities.FlatIndependent(densities.Bernoulli(logits=p, dtype=tf.float64), 3)
        ref = tfd.Independent(tfd.Bernoulli(logits=p, dtype=tf.float64), 3)
    elif base == "normal":
        fast = densities.FlatIndependent(densities.Normal(p, scale), 3)
        ref = tfd.Independent(tfd.Normal(p, scale), 3)
    else:
        fast = densities.FlatIndependent(tfd.ContinuousBernoulli(logits=p), 3)
        ref = tfd.Independent(tfd.ContinuousBernoulli(logits=p), 3)
    assert densities._flat_event(fast.distribution, x, 3) is not None  # the flat path runs
    got, want = fast.log_prob(x).numpy(), ref.log_prob(x).numpy()
    assert got.shape == want.shape == (3, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # a shape it does not flatten (x broadcasting inside the event) takes TFP's path
    np.testing.assert_allclose(fast.log_prob(x[:, :1]).numpy(), ref.log_prob(x[:, :1]).numpy(),
                               rtol=1e-12)
    assert fast.event_shape == ref.event_shape and fast.batch_shape == ref.batch_shape


def test_compile_defaults_and_their_round_trip(tmp_path):
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)
    model.compile(optimizer="adam")
    assert int(model.steps_per_execution) == training.DEFAULT_STEPS_PER_EXECUTION
    # XLA wherever Keras can use it (the rule: tests/test_compile_defaults.py)
    assert model.jit_compile is (training.default_jit_compile(model) is True)
    model.compile(optimizer="adam", run_eagerly=True)
    assert model.jit_compile is False and model.run_eagerly
    model.compile(optimizer="adam", jit_compile=False)
    assert model.jit_compile is False
    model.compile(optimizer="adam", steps_per_execution=3)
    assert int(model.steps_per_execution) == 3
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert int(loaded.steps_per_execution) == 3 and loaded.optimizer is not None
