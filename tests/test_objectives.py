"""Objectives: float64 references, identities on the same samples, gradients."""

import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import objectives
from support.linear_gaussian import make_problem, make_vae, sample_data


def _reference_logmeanexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(a - m), axis=axis))


@pytest.fixture
def log_w(rng):
    return rng.normal(loc=-90.0, scale=3.0, size=(24, 5))


def test_bounds_match_float64_references(log_w):
    t = tf.constant(log_w)
    np.testing.assert_allclose(objectives.elbo_bound(t), log_w.mean(0), rtol=1e-12)
    np.testing.assert_allclose(objectives.iwae_bound(t), _reference_logmeanexp(log_w, 0),
                               rtol=1e-12)
    # MIWAE(M, K): sample s = m * K + k; normalise over K inside each group, mean over M.
    m, k = 4, 6
    groups = [_reference_logmeanexp(log_w[g * k:(g + 1) * k], 0) for g in range(m)]
    np.testing.assert_allclose(objectives.miwae_bound(t, m), np.mean(groups, 0), rtol=1e-12)
    np.testing.assert_allclose(
        objectives.ciwae_bound(t, 0.3),
        0.3 * log_w.mean(0) + 0.7 * _reference_logmeanexp(log_w, 0), rtol=1e-12,
    )


def test_miwae_normalises_over_k_not_over_m(log_w):
    """The axis bug of one public implementation: normalising over M gives another value."""
    m, k = 4, 6
    t = tf.constant(log_w)
    wrong = np.mean(_reference_logmeanexp(log_w.reshape(m, k, -1), axis=0), axis=0)
    assert not np.allclose(objectives.miwae_bound(t, m), wrong)


def test_identities_on_the_same_samples(log_w):
    t = tf.constant(log_w)
    s = log_w.shape[0]
    np.testing.assert_allclose(objectives.iwae_bound(t[:1]), objectives.elbo_bound(t[:1]))
    np.testing.assert_allclose(objectives.miwae_bound(t, 1), objectives.iwae_bound(t))
    np.testing.assert_allclose(objectives.miwae_bound(t, s), objectives.elbo_bound(t))
    np.testing.assert_allclose(objectives.ciwae_bound(t, 1.0), objectives.elbo_bound(t))
    np.testing.assert_allclose(objectives.ciwae_bound(t, 0.0), objectives.iwae_bound(t))
    # Jensen: ELBO <= MIWAE(M, K) <= IWAE_MK on every column.
    assert np.all(objectives.elbo_bound(t) <= objectives.miwae_bound(t, 4) + 1e-12)
    assert np.all(objectives.miwae_bound(t, 4) <= objectives.iwae_bound(t) + 1e-12)


@pytest.fixture(scope="module")
def wrong_model():
    w, b, s = make_problem(seed=4)
    x = sample_data(w, b, s, n=8)
    return make_vae(w, b, s, loc_shift=0.4, scale_factor=1.5), x


def test_objective_classes_on_model_terms(wrong_model):
    model, x = wrong_model
    terms = model.compute_terms(x, num_samples=12, seed=5)
    lw = terms.log_weights()
    mc = objectives.ELBO(num_samples=12)
    np.testing.assert_allclose(objectives.IWAE(k=1).bound(
        model.compute_terms(x, num_samples=1, seed=5)),
        objectives.elbo_bound(model.compute_terms(x, num_samples=1, seed=5).log_weights()))
    np.testing.assert_allclose(objectives.MIWAE(1, 12).bound(terms), objectives.IWAE(12).bound(terms))
    np.testing.assert_allclose(objectives.MIWAE(12, 1).bound(terms), objectives.elbo_bound(lw),
                               rtol=1e-6)
    np.testing.assert_allclose(objectives.CIWAE(1.0, 12).bound(terms), objectives.elbo_bound(lw),
                               rtol=1e-6)
    np.testing.assert_allclose(objectives.CIWAE(0.0, 12).bound(terms), objectives.iwae_bound(lw),
                               rtol=1e-6)
    assert mc.num_samples == 12


def test_analytic_kl_equals_monte_carlo_kl(wrong_model):
    model, x = wrong_model
    terms = model.compute_terms(x, num_samples=20000, seed=6)
    per_sample = (terms.log_posterior - terms.log_prior).numpy()
    mc = per_sample.mean(0)
    stderr = per_sample.std(0) / np.sqrt(per_sample.shape[0])
    assert np.all(np.abs(terms.kl.numpy() - mc) < 4 * stderr + 1e-4)


@pytest.mark.parametrize("objective", [
    objectives.ELBO(), objectives.ELBO(num_samples=3, free_bits=0.5), objectives.IWAE(5),
    objectives.MIWAE(2, 3), objectives.PIWAE(2, 3), objectives.CIWAE(0.5, 4),
])
@pytest.mark.parametrize("estimator", ["standard", "dreg"])
def test_gradients_are_finite(objective, estimator, mnist_binary):
    x = mnist_binary[0][:16]
    model = keras_vae.VAE(encoder="mlp", latent_dim=4, objective=objective,
                          gradient_estimator=estimator, seed=0)
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x)
        dec, enc = objective.surrogates(terms, 1.0, dreg=estimator == "dreg")
        dec, enc = tf.reduce_mean(dec), tf.reduce_mean(enc)
    grads = tape.gradient(dec, model.trainable_variables)
    grads += tape.gradient(enc, model.trainable_variables)
    assert all(g is None or np.all(np.isfinite(g.numpy())) for g in grads)
    assert sum(g is not None for g in grads) >= len(model.trainable_variables)


def _grads(model, x, value_fn, variables, seed):
    with tf.GradientTape() as tape:
        terms = model.compute_terms(x, seed=seed)
        value = tf.reduce_mean(value_fn(terms))
    return tape.gradient(value, variables)


def test_piwae_gradients_are_the_two_objectives_gradients(mnist_binary):
    x = mnist_binary[0][:8]
    m, k = 3, 4
    model = keras_vae.VAE(encoder="mlp", latent_dim=4, objective=objectives.PIWAE(m, k), seed=1)
    on_encoder = model._split_variables()
    variables = model.trainable_variables
    enc_vars = [v for v, e in zip(variables, on_encoder) if e]
    dec_vars = [v for v, e in zip(variables, on_encoder) if not e]
    seed = 11
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x, seed=seed)
        dec, enc = model.objective.surrogates(terms)
        dec, enc = tf.reduce_mean(dec), tf.reduce_mean(enc)
    got_dec = tape.gradient(dec, dec_vars)
    got_enc = tape.gradient(enc, enc_vars)
    want_dec = _grads(model, x, lambda t: objectives.IWAE(m * k).bound(t), dec_vars, seed)
    want_enc = _grads(model, x, lambda t: objectives.MIWAE(m, k).bound(t), enc_vars, seed)
    for got, want in zip(got_dec + got_enc, want_dec + want_enc):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    # And they differ: the encoder does not follow IWAE_MK.
    iwae_enc = _grads(model, x, lambda t: objectives.IWAE(m * k).bound(t), enc_vars, seed)
    assert not all(np.allclose(a.numpy(), b.numpy()) for a, b in zip(got_enc, iwae_enc))


def test_train_step_applies_the_piwae_gradient_sets(mnist_binary):
    """One SGD step through fit moves each weight by -lr times its own objective's gradient."""
    import keras

    x = mnist_binary[0][:8]
    m, k = 2, 3
    lr = 0.01
    model = keras_vae.VAE(encoder="mlp", latent_dim=4, objective=objectives.PIWAE(m, k), seed=2)
    model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=False)
    before = [v.numpy().copy() for v in model.trainable_variables]
    seed = keras.random.SeedGenerator(0)
    seed.state.assign(model._noise_seed.state.value)
    on_encoder = model._split_variables()
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x, seed=seed, training=True)
        dec = tf.reduce_mean(objectives.iwae_bound(terms.log_weights()))
        enc = tf.reduce_mean(objectives.miwae_bound(terms.log_weights(), m))
    want = [tape.gradient(enc if e else dec, v) for v, e in zip(model.trainable_variables,
                                                                on_encoder)]
    model.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for b, v, g in zip(before, model.trainable_variables, want):
        np.testing.assert_allclose(v.numpy() - b, lr * g.numpy(), rtol=1e-4, atol=1e-7)


def test_dreg_with_one_sample_is_sticking_the_landing(wrong_model):
    """K = 1: DReG's encoder gradient is the path-derivative ELBO gradient (Roeder et al.)."""
    model, x = wrong_model
    enc_vars = model.posterior.trainable_variables
    # The fixture uses the standard estimator; switch to DReG for the stopped terms.
    model.gradient_estimator = "dreg"
    try:
        with tf.GradientTape() as tape:
            terms = model.compute_terms(x, num_samples=1, seed=7)
            stl = tf.reduce_mean(terms.log_likelihood + terms.log_prior
                                 - terms.log_posterior_stopped)
        want = tape.gradient(stl, enc_vars)
        with tf.GradientTape() as tape:
            terms = model.compute_terms(x, num_samples=1, seed=7)
            got = tf.reduce_mean(objectives.dreg_surrogate(
                terms.log_weights(stop_posterior=True), 1))
        got = tape.gradient(got, enc_vars)
    finally:
        model.gradient_estimator = "standard"
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_dreg_and_standard_iwae_gradients_agree_in_expectation(wrong_model):
    """DReG is unbiased: averaged over many draws it matches the standard IWAE gradient."""
    model, x = wrong_model
    enc_vars = model.posterior.trainable_variables
    k, reps = 8, 600
    model.gradient_estimator = "dreg"
    try:
        with tf.GradientTape(persistent=True) as tape:
            terms = model.compute_terms(x, num_samples=k * reps, seed=8)
            standard = tf.reduce_sum(objectives.miwae_bound(terms.log_weights(), reps))
            dreg = tf.reduce_sum(objectives.dreg_surrogate(
                terms.log_weights(stop_posterior=True), reps))
        g_std = tape.gradient(standard, enc_vars)[1].numpy()
        g_dreg = tape.gradient(dreg, enc_vars)[1].numpy()
    finally:
        model.gradient_estimator = "standard"
    scale = np.abs(g_std).max()
    np.testing.assert_allclose(g_dreg, g_std, atol=0.1 * scale)


def test_objective_lookup_and_config_round_trip():
    for obj in (objectives.ELBO(2, 0.1), objectives.IWAE(7), objectives.MIWAE(3, 4),
                objectives.PIWAE(2, 5), objectives.CIWAE(0.25, 6)):
        again = type(obj).from_config(obj.get_config())
        assert again.get_config() == obj.get_config()
    assert objectives.get("miwae", num_groups=2, k=3).num_samples == 6
    with pytest.raises(ValueError, match="Unknown objective"):
        objectives.get("iwea")
    with pytest.raises(ValueError, match="beta"):
        objectives.CIWAE(beta=1.5)


def test_estimator_is_an_argument_of_compute_terms(wrong_model):
    model, x = wrong_model
    assert model.gradient_estimator == "standard"
    assert model.compute_terms(x, 2, seed=1).log_posterior_stopped is None
    terms = model.compute_terms(x, 2, seed=1, gradient_estimator="dreg")
    np.testing.assert_allclose(terms.log_posterior_stopped.numpy(),
                               terms.log_posterior.numpy(), rtol=1e-6)
    assert model.gradient_estimator == "standard"
    with pytest.raises(ValueError, match="gradient_estimator"):
        model.compute_terms(x, 2, gradient_estimator="reinforce")


def test_surrogates_come_from_value_and_encoder_surrogate(log_w):
    t = tf.constant(log_w, "float32")
    zeros = tf.zeros_like(t)
    terms = objectives.Terms(t, zeros, zeros, zeros)  # log w = t, stopped too
    for obj in (objectives.IWAE(24), objectives.MIWAE(4, 6), objectives.CIWAE(0.3, 24)):
        dec, enc = obj.surrogates(terms)
        assert dec is enc  # the encoder follows the decoder's surrogate
        np.testing.assert_allclose(dec, obj.value(t))
        np.testing.assert_allclose(obj.bound(terms), obj.value(t))
    dec, enc = objectives.PIWAE(4, 6).surrogates(terms)
    np.testing.assert_allclose(dec, objectives.iwae_bound(t))
    np.testing.assert_allclose(enc, objectives.miwae_bound(t, 4))
    _, stl = objectives.ELBO(24).surrogates(terms, dreg=True)
    np.testing.assert_allclose(stl, objectives.dreg_surrogate(t, 24))
    np.testing.assert_allclose(stl, objectives.elbo_bound(t), rtol=1e-6)
    assert not hasattr(objectives.ELBO(3), "num_groups")
    assert not hasattr(objectives, "normalized_importance_weights")
