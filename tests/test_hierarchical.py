"""HierarchicalVAE: its log-weights against hand-computed densities and a closed-form log p(x).

The references are float64 NumPy, independent of TFP: Gaussian and Bernoulli
log-densities written out, the networks re-run from their weights, and the
two-layer linear-Gaussian model's exact marginal

    z2 ~ N(0, I),  z1|z2 ~ N(A z2 + a, s1^2 I),  x|z1 ~ N(B z1 + b, s^2 I)
    =>  x ~ N(B a + b, B (A A^T + s1^2 I) B^T + s^2 I).
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import likelihoods, objectives
from keras_vae._backend import keras, tf
from keras_vae.hierarchical import HierarchicalVAE

MIN_SCALE = 1e-4


# --------------------------------------------------------------------------- references


def normal_logpdf(x, loc, scale):
    """sum over the last axis of log N(x; loc, scale^2), float64."""
    x, loc, scale = (np.asarray(v, np.float64) for v in (x, loc, scale))
    return np.sum(-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi),
                  axis=-1)


def bernoulli_logpmf(x, logits):
    """sum over the last axis of x l - log(1 + e^l), float64."""
    x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def softplus(v):
    return np.logaddexp(0.0, v)


def inverse_softplus(v):
    return np.log(np.expm1(v))


def dense_stack(net, h, activation=np.tanh, last_linear=False):
    """Re-runs the Dense layers of a Sequential in float64 from their weights."""
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    for index, layer in enumerate(dense):
        kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
        h = h @ kernel + bias
        if not (last_linear and index == len(dense) - 1):
            h = activation(h)
    return h


def gaussian_head(head, h):
    kernel, bias = (w.astype(np.float64) for w in head.dense.get_weights())
    out = h @ kernel + bias
    d = out.shape[-1] // 2
    return out[..., :d], softplus(out[..., d:]) + MIN_SCALE


def linear_gaussian_log_marginal(x, A, a, s1, B, b, s):
    """Exact log p(x), [N], of the two-layer linear-Gaussian model (float64)."""
    cov = B @ (A @ A.T + s1 ** 2 * np.eye(A.shape[0])) @ B.T + s ** 2 * np.eye(B.shape[0])
    diff = x - (B @ a + b)
    chol = np.linalg.cholesky(cov)
    sol = np.linalg.solve(chol, diff.T)
    return -0.5 * (np.sum(sol ** 2, axis=0) + 2 * np.log(np.diag(chol)).sum()
                   + B.shape[0] * np.log(2 * np.pi))


def tiny(**kwargs):
    args = dict(latent_dims=(3, 2), event_shape=(2, 3), hidden_units=((5,), (4,)), seed=0)
    args.update(kwargs)
    return HierarchicalVAE(**args)


# --------------------------------------------------------------------------- the five densities


def test_log_weights_equal_hand_computed_densities():
    keras.utils.set_random_seed(1)
    model = tiny()
    rng = np.random.default_rng(0)
    x = (rng.random((4, 2, 3)) < 0.4).astype("float32")
    terms = model.compute_terms(x, num_samples=3, seed=11)
    z1, z2 = (t.numpy().astype(np.float64) for t in model.sample_posterior(x, 3, seed=11))
    assert z1.shape == (3, 4, 3) and z2.shape == (3, 4, 2)

    flat = x.reshape(4, -1).astype(np.float64)
    loc1, scale1 = gaussian_head(model.posterior, dense_stack(model.encoder, flat))
    log_q1 = normal_logpdf(z1, loc1, scale1)
    loc2, scale2 = gaussian_head(model.posterior2, dense_stack(model.encoder2, z1))
    log_q2 = normal_logpdf(z2, loc2, scale2)
    log_p2 = normal_logpdf(z2, 0.0, 1.0)
    ploc, pscale = gaussian_head(model.conditional_prior, dense_stack(model.decoder2, z2))
    log_p1 = normal_logpdf(z1, ploc, pscale)
    logits = dense_stack(model.decoder, z1, last_linear=True)
    log_px = bernoulli_logpmf(flat, logits)

    np.testing.assert_allclose(terms.log_likelihood.numpy(), log_px, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms.log_prior.numpy(), log_p1 + log_p2, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms.log_posterior.numpy(), log_q1 + log_q2, rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_allclose(terms.log_weights().numpy(),
                               log_px + log_p1 + log_p2 - log_q1 - log_q2, rtol=1e-5, atol=1e-4)
    assert terms.kl is None  # no analytic KL for the chain: Monte Carlo

    parts = {k: v.numpy() for k, v in model.log_densities(x, z1.astype("float32"),
                                                           z2.astype("float32")).items()}
    for name, reference in (("log_px_z1", log_px), ("log_pz1_z2", log_p1), ("log_pz2", log_p2),
                            ("log_qz1_x", log_q1), ("log_qz2_z1", log_q2)):
        np.testing.assert_allclose(parts[name], reference, rtol=1e-5, atol=1e-4, err_msg=name)


def test_decoder_hooks_follow_the_mean_of_p_z1_given_z2():
    keras.utils.set_random_seed(2)
    model = tiny()
    z2 = np.random.default_rng(1).standard_normal((5, 2))
    ploc, _ = gaussian_head(model.conditional_prior, dense_stack(model.decoder2, z2))
    probs = 1 / (1 + np.exp(-dense_stack(model.decoder, ploc, last_linear=True)))
    params = model.decoder_parameters(z2.astype("float32"))
    np.testing.assert_allclose(params["mean"].numpy().reshape(5, -1), probs, atol=1e-5)
    np.testing.assert_allclose(params["probs"].numpy(), params["mean"].numpy())
    assert model.latent_dim == 2 and model.event_shape == (2, 3)
    x = (np.random.default_rng(2).random((4, 2, 3)) < 0.5).astype("float32")
    loc2, scale2 = model.encoder_parameters(x)
    loc1, _ = gaussian_head(model.posterior, dense_stack(model.encoder, x.reshape(4, -1)))
    ref_loc2, ref_scale2 = gaussian_head(model.posterior2, dense_stack(model.encoder2, loc1))
    np.testing.assert_allclose(loc2.numpy(), ref_loc2, atol=1e-5)
    np.testing.assert_allclose(scale2.numpy(), ref_scale2, atol=1e-5)
    assert model.sample(3, seed=0).shape == (3, 2, 3)
    assert model.interpolate(x[0], x[1], steps=4).shape == (4, 2, 3)


def test_dreg_stopped_posterior_has_the_same_value():
    keras.utils.set_random_seed(3)
    model = tiny(gradient_estimator="dreg")
    x = (np.random.default_rng(3).random((4, 2, 3)) < 0.5).astype("float32")
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(x, num_samples=2, seed=5)
        stopped = tf.reduce_sum(terms.log_posterior_stopped)
        total = tf.reduce_sum(terms.log_posterior)
    np.testing.assert_allclose(terms.log_posterior_stopped.numpy(), terms.log_posterior.numpy(),
                               rtol=1e-6, atol=1e-5)
    # q(z2|z1)'s weights reach the stopped log q only through the draw z2: with the
    # noise fixed, that gradient is the path derivative, not zero and not the full one.
    kernel = model.posterior2.dense.kernel
    full = tape.gradient(total, kernel)
    path = tape.gradient(stopped, kernel)
    assert path is not None and np.all(np.isfinite(path.numpy()))
    assert np.abs(full.numpy() - path.numpy()).max() > 1e-4


# --------------------------------------------------------------------------- closed form


def linear_gaussian_model(rng):
    """A HierarchicalVAE set to the two-layer linear-Gaussian model, and its parameters."""
    D, d1, d2 = 3, 2, 1
    A = rng.normal(size=(d1, d2))
    a = rng.normal(size=d1)
    B = rng.normal(size=(D, d1))
    b = rng.normal(size=D)
    s1, s = 0.6, 0.5
    model = HierarchicalVAE(
        latent_dims=(d1, d2), event_shape=(D,), hidden_units=((), ()),
        likelihood=likelihoods.GaussianLikelihood((D,), scale=s, name="likelihood"),
        objective=keras_vae.IWAE(k=4), seed=0,
    )
    # p(z1|z2) and p(x|z1): the linear maps and fixed scales.
    model.conditional_prior.dense.set_weights([
        np.concatenate([A.T, np.zeros((d2, d1))], axis=1).astype("float32"),
        np.concatenate([a, np.full(d1, inverse_softplus(s1 - MIN_SCALE))]).astype("float32"),
    ])
    model.decoder.get_layer("logits").set_weights([B.T.astype("float32"), b.astype("float32")])
    # q(z2|z1) = the exact p(z2|z1) (one-dimensional, so diagonal is exact).
    C = np.linalg.inv(np.eye(d2) + A.T @ A / s1 ** 2)
    model.posterior2.dense.set_weights([
        np.concatenate([(C @ A.T / s1 ** 2).T, np.zeros((d1, d2))], axis=1).astype("float32"),
        np.concatenate([-(C @ A.T @ a) / s1 ** 2,
                        inverse_softplus(np.sqrt(np.diag(C)) - MIN_SCALE)]).astype("float32"),
    ])
    # q(z1|x): p(z1|x)'s mean, shifted, with its marginal scales widened (full
    # covariance in truth, so no diagonal q is exact): IWAE_1 is visibly loose.
    cov1 = A @ A.T + s1 ** 2 * np.eye(d1)
    post = np.linalg.inv(np.linalg.inv(cov1) + B.T @ B / s ** 2)
    gain = post @ B.T / s ** 2  # mean = gain x + offset
    offset = post @ (np.linalg.solve(cov1, a) - B.T @ b / s ** 2) + 0.3
    model.posterior.dense.set_weights([
        np.concatenate([gain.T, np.zeros((D, d1))], axis=1).astype("float32"),
        np.concatenate([offset, inverse_softplus(1.5 * np.sqrt(np.diag(post)) - MIN_SCALE)]
                       ).astype("float32"),
    ])
    return model, (A, a, s1, B, b, s)


def test_iwae_approaches_the_exact_log_marginal_of_a_linear_gaussian_chain():
    rng = np.random.default_rng(7)
    model, (A, a, s1, B, b, s) = linear_gaussian_model(rng)
    n = 400
    z2 = rng.normal(size=(n, 1))
    z1 = z2 @ A.T + a + s1 * rng.normal(size=(n, 2))
    x = z1 @ B.T + b + s * rng.normal(size=(n, 3))
    exact = linear_gaussian_log_marginal(x, A, a, s1, B, b, s).mean()

    gaps = []
    for k in (1, 10, 100, 2000):
        terms = model.compute_terms(x.astype("float32"), num_samples=k, seed=k)
        gaps.append(exact - float(np.mean(objectives.iwae_bound(terms.log_weights()).numpy())))
    # IWAE_k is a lower bound that tightens monotonically to log p(x) (Burda et al., thm 1).
    assert gaps[0] > 0.1, gaps
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] > -0.01, gaps
    assert gaps[3] < 0.02, gaps

    # The comparison report's estimator (keras_vae.evaluation underneath) reaches it too.
    from keras_vae import comparison
    estimate = comparison.log_likelihood(model, x.astype("float32"), k=2000, batch_size=200,
                                         seed=1)
    assert abs(estimate - exact) < 0.02, (estimate, exact)


# --------------------------------------------------------------------------- training, saving


def test_paper_preset_has_burda_et_al_architecture():
    model = HierarchicalVAE.preset("iwae")
    units = lambda net: [l.units for l in net.layers if isinstance(l, keras.layers.Dense)]
    assert units(model.encoder) == [200, 200]
    assert model.posterior.dense.units == 2 * 100
    assert units(model.encoder2) == [100, 100]
    assert model.posterior2.dense.units == 2 * 50
    assert units(model.decoder2) == [100, 100]
    assert model.conditional_prior.dense.units == 2 * 100
    assert units(model.decoder) == [200, 200, 784]
    assert model.latent_dim == 50 and model.latent_dims == (100, 50)
    assert all(l.activation.__name__ == "tanh" for l in model.encoder.layers
               if isinstance(l, keras.layers.Dense))
    assert isinstance(model.likelihood, likelihoods.BernoulliLikelihood)


@pytest.mark.parametrize("objective, estimator", [
    (keras_vae.IWAE(k=3), "standard"),
    (keras_vae.PIWAE(num_groups=2, k=2), "standard"),
    (keras_vae.MIWAE(num_groups=2, k=2), "dreg"),
])
def test_fit_runs_without_nan(mnist_binary, objective, estimator):
    x_train = mnist_binary[0][:240]
    keras.utils.set_random_seed(0)
    model = HierarchicalVAE(latent_dims=(8, 4), event_shape=(28, 28, 1),
                            hidden_units=((32,), (16,)), objective=objective,
                            gradient_estimator=estimator, seed=0)
    model.initialize_output_bias(x_train)
    on_encoder = model._split_variables()
    encoder_side = sum(len(l.trainable_variables) for l in (
        model.encoder, model.posterior, model.encoder2, model.posterior2))
    assert sum(on_encoder) == encoder_side and not all(on_encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x_train, epochs=2, batch_size=40, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert int(model.nonfinite_steps.numpy()) == 0
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert f"iwae_{objective.num_samples}" in history.history


def test_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(4)
    model = tiny(objective=keras_vae.PIWAE(num_groups=2, k=3), prior="mixture")
    model.compile(optimizer="adam")
    x = (np.random.default_rng(4).random((6, 2, 3)) < 0.5).astype("float32")
    model.fit(x, epochs=1, batch_size=3, verbose=0)
    path = tmp_path / "hvae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, HierarchicalVAE)
    assert loaded.latent_dims == (3, 2) and loaded.hidden_units == ((5,), (4,))
    assert isinstance(loaded.objective, keras_vae.PIWAE) and loaded.objective.k == 3
    np.testing.assert_allclose(loaded.compute_terms(x, 4, seed=2).log_weights().numpy(),
                               model.compute_terms(x, 4, seed=2).log_weights().numpy(),
                               rtol=1e-6, atol=1e-5)
    z = np.random.default_rng(5).standard_normal((3, 2)).astype("float32")
    np.testing.assert_allclose(loaded.decoder_parameters(z)["mean"].numpy(),
                               model.decoder_parameters(z)["mean"].numpy(), atol=1e-6)


def test_rejects_what_the_chain_does_not_have():
    with pytest.raises(ValueError, match="free bits"):
        tiny(objective=keras_vae.ELBO(free_bits=0.1))
    with pytest.raises(TypeError, match="latent_dim"):
        tiny(latent_dim=7)
    with pytest.raises(ValueError, match="latent_dims"):
        tiny(latent_dims=(3,))


# --------------------------------------------------------------------------- export


def test_export_of_the_z2_decoder_passes_parity_checks(tmp_path):
    """export_all checks every artefact against the Keras model (raising if one disagrees);
    here the ONNX decoder is also checked against the NumPy chain z2 -> E p(z1|z2) -> p(x|z1)."""
    export = pytest.importorskip("keras_vae.export")
    onnxruntime = pytest.importorskip("onnxruntime")
    keras.utils.set_random_seed(6)
    model = HierarchicalVAE(latent_dims=(6, 3), event_shape=(28, 28, 1),
                            hidden_units=((16,), (8,)), seed=0)
    path = tmp_path / "hvae.keras"
    model.save(path)
    manifest = export.export_all(path, tmp_path / "out", formats=("savedmodel", "onnx"))
    assert manifest["model"]["latent_dim"] == 3
    assert manifest["model"]["event_shape"] == [28, 28, 1]
    assert "savedmodel" in manifest["parity"] and "onnx_decoder" in manifest["parity"]

    z2 = np.random.default_rng(8).standard_normal((5, 3)).astype("float32")
    ploc, _ = gaussian_head(model.conditional_prior, dense_stack(model.decoder2, z2))
    probs = 1 / (1 + np.exp(-dense_stack(model.decoder, ploc, last_linear=True)))
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "onnx" / "decoder.onnx"),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {session.get_inputs()[0].name: z2})))
    np.testing.assert_allclose(outputs["mean"].reshape(5, -1), probs, atol=1e-5)


def test_uses_the_base_hooks_and_passes_base_arguments_on():
    model = tiny(analytic_kl=True, name="chain")
    assert model.name == "chain" and model.analytic_kl
    assert model.compute_terms(np.zeros((2, 2, 3), "float32"), 2, seed=0).kl is None
    assert model.encoder_layers == (model.encoder, model.posterior, model.encoder2,
                                    model.posterior2)
    with pytest.raises(TypeError, match="encoder: the networks come from hidden_units"):
        tiny(encoder="mlp")
    config = model.get_config()
    assert config["latent_dims"] == [3, 2] and "encoder" not in config
    again = HierarchicalVAE.from_config(config)
    assert again.hidden_units == model.hidden_units and again.analytic_kl
    from keras_vae import hierarchical
    assert hierarchical.PRESETS["iwae"] == {"latent_dims": (100, 50),
                                            "hidden_units": ((200, 200), (100, 100)),
                                            "activation": "tanh"}
