"""The compiled train step's gradients and logged bounds equal a slow, independent reference.

The reference reuses only the model's networks (the weights under test) and its
noise: it draws the same eps, builds z = loc + scale * eps itself, evaluates stock
TFP distributions in float64 (`tfd.Independent` of `tfd.Bernoulli`, `tfd.Normal`,
`tfd.ContinuousBernoulli`; `tfd.MultivariateNormalDiag` for q and p), writes each
bound in its plain formula, and takes the gradients with a persistent tape, no XLA.
The fast path is `VAE.train_step` under `tf.function(jit_compile=...)` with
SGD(learning_rate=1): the weight change is minus the gradient.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import networks, objectives
from keras_vae._backend import keras, tf, tfd

EVENT, D, B = (4, 4, 1), 3, 6
F64 = tf.float64


def _model(objective, likelihood="bernoulli", **kwargs):
    keras.utils.set_random_seed(0)
    model = keras_vae.VAE(
        latent_dim=D, event_shape=EVENT, likelihood=likelihood, objective=objective, seed=3,
        encoder=networks.build_encoder("mlp", EVENT, hidden_units=(8,)),
        decoder=networks.build_decoder("mlp", D, EVENT, hidden_units=(8,)), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    return model


def _data(likelihood):
    rng = np.random.default_rng(1)
    x = rng.random((B,) + EVENT).astype("float32")
    return (x < 0.4).astype("float32") if likelihood == "bernoulli" else x


def _lme(a, axis):
    return tf.reduce_logsumexp(a, axis=axis) - tf.math.log(tf.cast(tf.shape(a)[axis], F64))


def _likelihood(model, outputs):
    o = tf.cast(outputs, F64)
    lik = model.likelihood
    if isinstance(lik, keras_vae.likelihoods.GaussianLikelihood):
        base = tfd.Normal(o, tf.cast(lik.stddev(), F64))
    elif isinstance(lik, keras_vae.likelihoods.ContinuousBernoulliLikelihood):
        base = tfd.ContinuousBernoulli(logits=o)
    else:
        base = tfd.Bernoulli(logits=o, dtype=F64)
    return tfd.Independent(base, reinterpreted_batch_ndims=len(EVENT))


def _reference(model, x, state, jit):
    """(decoder target, encoder target, bounds) of the slow path, all float64 [B]."""
    obj, s = model.objective, model.objective.num_samples
    noise = keras.random.SeedGenerator(0)
    noise.state.assign(state)
    loc, scale = model.posterior(model.encoder(x, training=True))
    # the draw the step makes, compiled the same way (under XLA a generator's draw differs)
    draw = tf.function(lambda: keras_vae.densities.standard_normal((s, B, D), seed=noise),
                       jit_compile=jit)
    eps = tf.cast(draw(), F64)
    loc, scale = tf.cast(loc, F64), tf.cast(scale, F64)
    z = loc + scale * eps
    outputs = model.likelihood(model.decoder(tf.cast(tf.reshape(z, (s * B, D)), "float32"),
                                             training=True))
    log_px = _likelihood(model, tf.reshape(outputs, (s, B) + EVENT)).log_prob(
        tf.cast(x, F64))
    prior = tfd.MultivariateNormalDiag(tf.zeros(D, F64), tf.ones(D, F64))
    log_pz = prior.log_prob(z)
    log_qz = tfd.MultivariateNormalDiag(loc, scale).log_prob(z)
    stopped = tfd.MultivariateNormalDiag(tf.stop_gradient(loc), tf.stop_gradient(scale))
    kl_units = 0.5 * (loc ** 2 + scale ** 2 - 1.0) - tf.math.log(scale)  # KL(N(m, s) || N(0, 1))
    kl = tf.reduce_sum(kl_units, -1) if model.analytic_kl else tf.reduce_mean(log_qz - log_pz, 0)
    beta = float(model.kl_weight())
    log_w = log_px + log_pz - log_qz
    log_wb = log_px + beta * (log_pz - log_qz)
    recon = tf.reduce_mean(log_px, 0)
    elbo = recon - kl
    iwae = _lme(log_w, 0)
    m = getattr(obj, "num_groups", 1)
    groups = lambda a: tf.reshape(a, (m, s // m, B))  # noqa: E731  (s = m * k + j)
    miwae = lambda a: tf.reduce_mean(_lme(groups(a), 1), 0)  # noqa: E731
    bounds = {"elbo": elbo, "reconstruction": recon, "kl": kl}
    if s > 1:
        bounds[f"iwae_{s}"] = iwae
    if isinstance(obj, objectives.ELBO):
        if obj.free_bits > 0:
            units = tf.reduce_mean(kl_units, 0)
            value = recon - beta * tf.reduce_sum(tf.maximum(units, obj.free_bits))
        else:
            value = recon - beta * kl
    elif isinstance(obj, objectives.PIWAE):
        value = _lme(log_wb, 0)
    elif isinstance(obj, objectives.MIWAE):
        value = bounds["miwae"] = miwae(log_wb)
    elif isinstance(obj, objectives.CIWAE):
        value = obj.beta * tf.reduce_mean(log_wb, 0) + (1 - obj.beta) * _lme(log_wb, 0)
        bounds["ciwae"] = obj.beta * tf.reduce_mean(log_w, 0) + (1 - obj.beta) * iwae
    else:
        value = _lme(log_wb, 0)
    encoder = miwae(log_wb) if isinstance(obj, objectives.PIWAE) else value
    if model.gradient_estimator == "dreg":
        log_ws = log_px + beta * (log_pz - stopped.log_prob(z))
        k = 1 if isinstance(obj, objectives.ELBO) else s // m
        g = tf.reshape(log_ws, (s // k, k, B))
        w2 = tf.stop_gradient(tf.nn.softmax(g, axis=1)) ** 2
        encoder = tf.reduce_mean(tf.reduce_sum(w2 * g, 1), 0)
    return value, encoder, bounds


def _check(model, x, jit):
    variables = model.trainable_variables
    encoder_ids = {id(v) for layer in model.encoder_layers for v in layer.trainable_variables}
    state = model._noise_seed.state.numpy()
    before = [v.numpy().astype("float64") for v in variables]
    with tf.GradientTape(persistent=True) as tape:
        value, encoder, bounds = _reference(model, x, state, jit)
        dec_loss, enc_loss = -tf.reduce_mean(value), -tf.reduce_mean(encoder)
    ref = [tape.gradient(enc_loss if id(v) in encoder_ids else dec_loss, v) for v in variables]
    for v, w in zip(variables, before):
        v.assign(w.astype("float32"))
    logs = tf.function(model.train_step, jit_compile=jit)(tf.constant(x))
    fast = [w - v.numpy() for v, w in zip(variables, before)]
    for f, r, v in zip(fast, ref, variables):
        r = np.zeros_like(f) if r is None else r.numpy()
        scale = np.abs(r).max() + 1e-3
        np.testing.assert_allclose(f, r, rtol=0, atol=2e-4 * scale, err_msg=v.path)
    for name, bound in bounds.items():
        np.testing.assert_allclose(float(logs[name]), float(tf.reduce_mean(bound)),
                                   rtol=2e-5, atol=2e-5, err_msg=name)
    np.testing.assert_allclose(float(logs["loss"]), float(dec_loss), rtol=2e-5, atol=2e-5)


OBJECTIVES = [
    ("elbo", {}), ("elbo_mc_kl", {"analytic_kl": False}),
    ("elbo_free_bits", {"objective": objectives.ELBO(num_samples=2, free_bits=0.4)}),
    ("elbo_beta_warmup", {"beta": 0.7, "warmup_steps": 4}),
    ("iwae", {"objective": objectives.IWAE(k=5)}),
    ("miwae", {"objective": objectives.MIWAE(num_groups=2, k=3)}),
    ("piwae", {"objective": objectives.PIWAE(num_groups=2, k=3)}),
    ("ciwae", {"objective": objectives.CIWAE(beta=0.3, k=4)}),
    ("iwae_dreg", {"objective": objectives.IWAE(k=4), "gradient_estimator": "dreg"}),
    ("elbo_dreg", {"objective": objectives.ELBO(num_samples=3), "gradient_estimator": "dreg"}),
]


CASES = [(o, False) for o in OBJECTIVES] + [(o, True) for o in OBJECTIVES
                                              if o[0] == "iwae"]  # XLA compiles: one


@pytest.mark.parametrize("case", CASES, ids=[f"{o[0]}-{'xla' if j else 'graph'}"
                                             for o, j in CASES])
def test_train_step_gradients_equal_the_reference(case):
    (name, kwargs), jit = case
    kwargs = dict(kwargs)
    model = _model(kwargs.pop("objective", "elbo"), **kwargs)
    if "warmup" in name:
        model.optimizer.iterations.assign(2)  # the KL weight is 0.7 * 2 / 4 = 0.35
    _check(model, _data("bernoulli"), jit)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_learned_scale",
                                        "continuous_bernoulli"])
def test_train_step_gradients_equal_the_reference_for_each_likelihood(likelihood):
    _check(_model("elbo", likelihood), _data(likelihood), jit=False)
