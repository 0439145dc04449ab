"""flows: IAF and planar q(z|x) against float64 numpy change of variables, the one-pass
log q of drawn z, invertibility, the linear-Gaussian oracle's correlated posterior, save/load."""

import numpy as np
import pytest

import keras_vae
from keras_vae import flows, made, names, posteriors
from keras_vae._backend import keras, tf
from keras_vae.evaluation import bounds
from support.linear_gaussian import LinearGaussian

D_FEATURES, D = 5, 3


def _softplus(a):
    return np.logaddexp(0.0, a)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _randomise(layer, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape).astype("float32"))


def _made_numpy(layer, x, context):
    """The MADE in float64 numpy from its weights and the degree rule."""
    weights = [w.numpy().astype("float64") for w in layer.weights]
    n = len(layer.hidden_units) + 1
    kernels, biases, context_kernel = weights[0:2 * n:2], weights[1:2 * n:2], weights[2 * n]
    masks = made.masks(layer.event_size, layer.num_params, layer.hidden_units, layer.order,
                       has_context=True)
    h = x
    for index in range(n):
        h = h @ (kernels[index] * masks[index]) + biases[index]
        if index == 0:
            h = h + context @ context_kernel
        if index < n - 1:
            h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))  # elu
    return h.reshape(h.shape[:-1] + (layer.event_size, layer.num_params))


def _base_numpy(head, features, eps):
    kernel, bias = (w.numpy().astype("float64") for w in head.dense.weights)
    out = features.astype("float64") @ kernel + bias
    loc, scale = out[:, :D], _softplus(out[:, D:2 * D]) + head.min_scale
    log_base = np.sum(-0.5 * eps ** 2 - 0.5 * np.log(2 * np.pi) - np.log(scale), axis=-1)
    return out, loc + scale * eps, log_base


def _iaf_numpy(head, features, eps):
    """(z_K, log q(z_K|x)) by the change of variables in float64."""
    out, z, log_q = _base_numpy(head, features, eps)
    context = out[:, 2 * D:]
    for layer in head.mades:
        params = _made_numpy(layer, z, context)
        gate = _sigmoid(params[..., 1] + head.gate_bias)
        z = gate * z + (1.0 - gate) * params[..., 0]
        log_q = log_q - np.sum(np.log(gate), axis=-1)
    return z, log_q


def _planar_numpy(head, features, eps):
    out, z, log_q = _base_numpy(head, features, eps)
    for t in range(head.num_steps):
        step = out[:, 2 * D + t * (2 * D + 1):2 * D + (t + 1) * (2 * D + 1)]
        u, w, b = step[:, :D], step[:, D:2 * D], step[:, 2 * D]
        wu = np.sum(w * u, -1, keepdims=True)
        u_hat = u + (-1.0 + _softplus(wu) - wu) * w / np.sum(w * w, -1, keepdims=True)
        h = np.tanh(np.sum(w * z, -1) + b)
        log_q = log_q - np.log(np.abs(1.0 + (1.0 - h ** 2) * np.sum(w * u_hat, -1)))
        z = z + u_hat * h[..., None]
    return z, log_q


def _head(kind, **kwargs):
    if kind == "iaf":
        head = flows.IAFPosterior(D, num_steps=3, hidden_units=(8, 7), context_units=4,
                                  **kwargs)
    else:
        head = flows.PlanarPosterior(D, num_steps=3, **kwargs)
    head.build((None, D_FEATURES))
    _randomise(head)
    return head


@pytest.mark.parametrize("kind", ["iaf", "planar"])
def test_log_q_of_draws_is_the_change_of_variables(kind):
    head = _head(kind)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(4, D_FEATURES)).astype("float32")
    eps = rng.normal(size=(4, D))
    params = head(features)
    z = head.reparameterize(params, tf.constant(eps, "float32"))
    q = head.distribution(params)
    reference = (_iaf_numpy if kind == "iaf" else _planar_numpy)(head, features, eps)
    np.testing.assert_allclose(z.numpy(), reference[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.log_prob(z).numpy(), reference[1], rtol=1e-4, atol=1e-4)
    # A z from elsewhere (no cache entry) goes through the inverse: same density.
    fresh = tf.constant(z.numpy())
    np.testing.assert_allclose(q.log_prob(fresh).numpy(), reference[1], rtol=1e-3, atol=1e-3)
    assert q.batch_shape == (4,) and q.event_shape == (D,)


@pytest.mark.parametrize("kind", ["iaf", "planar"])
def test_inverse_undoes_forward(kind):
    head = _head(kind)
    params = head(np.random.default_rng(2).normal(size=(6, D_FEATURES)).astype("float32"))
    bijector = head.bijector(params)
    x = tf.constant(np.random.default_rng(3).normal(size=(2, 6, D)).astype("float32"))
    y = tf.constant(bijector.forward(x).numpy())  # a new tensor: the cache does not know it
    np.testing.assert_allclose(bijector.inverse(y).numpy(), x.numpy(), atol=2e-4)
    fldj = bijector.forward_log_det_jacobian(x, event_ndims=1)
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(y, event_ndims=1).numpy(),
                               -fldj.numpy(), atol=2e-4)


def test_planar_constraint_keeps_the_step_invertible():
    w = tf.constant([[1.0, 0.0], [0.5, -2.0]])
    u = -7.0 * w  # w.u << -1: unconstrained, the map folds over along w
    b = tf.constant([0.3, -0.1])
    step = flows.PlanarStep(u, w, b)
    np.testing.assert_allclose(step.wu_hat.numpy(),
                               np.maximum(_softplus([-7.0, -29.75]), flows.PLANAR_MIN_SLACK) - 1)
    np.testing.assert_allclose(tf.reduce_sum(w * step.u_hat, -1).numpy(), step.wu_hat.numpy(),
                               atol=1e-6)
    a = np.linspace(-4, 4, 201)[:, None]  # points a w / |w|^2 on the line of w
    for row in range(2):
        wr, br = w.numpy()[row].astype("float64"), float(b.numpy()[row])
        line = a * wr / (wr @ wr)
        for vec, increasing in ((step.u_hat.numpy()[row], True), (u.numpy()[row], False)):
            image = line + np.tanh(line @ wr + br)[:, None] * vec.astype("float64")
            slopes = np.diff(image @ wr)
            # constrained: strictly increasing along w; unconstrained: it folds over
            assert np.all(slopes > 0) if increasing else np.any(slopes < 0)


def test_zero_initialised_steps_give_the_diagonal_gaussian_exactly():
    head = flows.IAFPosterior(D, num_steps=2, hidden_units=(8,), context_units=4,
                              gate_bias=1.5)  # zero output kernels: m = 0, s = 0
    features = np.random.default_rng(4).normal(size=(5, D_FEATURES)).astype("float32")
    params = head(features)
    z = head.sample(params, 7, seed=3)
    loc, scale = (params[1][key].numpy().astype("float64") for key in ("loc", "scale"))
    shrink = _sigmoid(1.5) ** 2
    diagonal = posteriors.DiagonalGaussianPosterior(D).distribution(
        (tf.constant(loc * shrink, "float32"), tf.constant(scale * shrink, "float32")))
    np.testing.assert_allclose(head.distribution(params).log_prob(z).numpy(),
                               diagonal.log_prob(z).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(params[0].numpy(), loc * shrink, rtol=1e-5, atol=1e-6)
    no_steps = flows.IAFPosterior(D, num_steps=0, context_units=4)
    params = no_steps(features)
    z = no_steps.sample(params, 2, seed=1)
    base = posteriors.DiagonalGaussianPosterior(D).distribution(
        (params[1]["loc"], params[1]["scale"]))
    np.testing.assert_array_equal(no_steps.distribution(params).log_prob(z).numpy(),
                                  base.log_prob(z).numpy())


def test_log_q_of_draws_costs_no_inverse_pass(monkeypatch):
    calls = []
    for step in (flows.IAFStep, flows.PlanarStep):
        original = step._augmented_inverse
        monkeypatch.setattr(step, "_augmented_inverse",
                            lambda self, y, f=original: calls.append(1) or f(self, y))
    x = np.random.default_rng(5).normal(size=(4, 6)).astype("float32")
    for kind in ("planar", "iaf"):
        model = keras_vae.VAE(latent_dim=2, event_shape=(6,), encoder=keras.layers.Dense(8),
                              decoder=keras.layers.Dense(6), posterior=kind,
                              likelihood="gaussian", objective="iwae", seed=0)
        assert model.compute_terms(x, num_samples=3).log_weights().shape == (3, 4)  # eager
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=4, verbose=0)  # the traced training step (IAF)
    assert not calls


def test_iaf_closes_the_gap_that_a_diagonal_posterior_cannot():
    oracle = LinearGaussian.correlated()  # posterior correlation -0.85
    x = oracle.sample(512, seed=3)
    exact = oracle.marginal_log_prob(x)
    gaps = {}
    heads = {"diagonal": posteriors.DiagonalGaussianPosterior(2, name="posterior"),
             "iaf": flows.IAFPosterior(2, num_steps=2, hidden_units=(16,), context_units=8,
                                       name="posterior")}
    for name, head in heads.items():
        keras.utils.set_random_seed(0)
        model = oracle.vae(posterior=head, objective=keras_vae.ELBO(num_samples=4), seed=0)
        model.decoder.trainable = False  # p(x|z) stays the oracle's: log p(x) is exact
        model.compile(optimizer=keras.optimizers.Adam(0.02), steps_per_execution=20)
        model.fit(x, epochs=60, batch_size=128, verbose=0)  # 240 steps
        gaps[name] = float(np.mean(exact - bounds(model, x, k=64, seed=1).elbo))
    best_diagonal = oracle.best_diagonal_gap  # 0.63 nats
    assert gaps["diagonal"] > best_diagonal - 0.05
    assert 0.0 < gaps["iaf"] < 0.5 * best_diagonal, (gaps, best_diagonal)


def test_save_load_registry_and_refusals(tmp_path):
    assert {"iaf", "planar"} <= set(names.POSTERIORS.names())
    x = np.random.default_rng(6).normal(size=(3, 6)).astype("float32")
    model = keras_vae.VAE(latent_dim=2, event_shape=(6,), encoder="mlp", posterior="iaf",
                          likelihood="gaussian", seed=0)
    _randomise(model.posterior, seed=7, scale=0.3)
    model.save(tmp_path / "iaf.keras")
    loaded = keras.saving.load_model(tmp_path / "iaf.keras")
    assert isinstance(loaded.posterior, flows.IAFPosterior)
    eps = tf.constant(np.random.default_rng(8).normal(size=(2, 3, 2)).astype("float32"))
    for m in (model, loaded):
        params = m.posterior(m.encoder(x))
        m.z = m.posterior.reparameterize(params, eps)
        m.log_q = m.posterior.distribution(params).log_prob(m.z).numpy()
    np.testing.assert_array_equal(loaded.log_q, model.log_q)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    with pytest.raises(ValueError, match="dreg"):
        model.compute_terms(x, gradient_estimator="dreg")
    free_bits = keras_vae.VAE(latent_dim=2, event_shape=(6,), encoder="mlp", posterior="planar",
                              likelihood="gaussian", objective=keras_vae.ELBO(free_bits=0.1))
    with pytest.raises(ValueError, match="factorised"):
        free_bits.compute_terms(x)
    exported = model.posterior.export_parameters(model.encoder_parameters(x))
    np.testing.assert_array_equal(exported["loc"].numpy(), model.encoder_parameters(x)[0].numpy())
    assert exported["scale"].shape == (3, 2)
    assert model.encode(x).mean().shape == (3, 2)  # Monte-Carlo mean, deterministic
    np.testing.assert_array_equal(model.encode(x).mean().numpy(), model.encode(x).mean().numpy())


def test_exported_encode_of_a_flow_gives_its_center_and_base_scale(tmp_path):
    from keras_vae.export import api, manifest, runtimes

    model = keras_vae.VAE(latent_dim=3, event_shape=(6, 6, 1), posterior="iaf", seed=0)
    x = (np.random.default_rng(0).random((5, 6, 6, 1)) > 0.5).astype("float32")
    api.export_all(model, tmp_path, formats=("savedmodel",))
    loaded = runtimes.savedmodel(manifest.artefact_path(manifest.load(tmp_path), "savedmodel",
                                                         tmp_path))
    outputs = loaded.signatures["encode"](x=tf.constant(x))
    expected = model.posterior.export_parameters(model.encoder_parameters(x))
    np.testing.assert_allclose(outputs["loc"].numpy(), expected["loc"], atol=1e-5)
    np.testing.assert_allclose(outputs["scale"].numpy(), expected["scale"], atol=1e-5)
