"""Conditional VAEs: q(z|x, y), p(x|z, y), p(z|y); exact log p(x|y), class-true samples, saving.

The closed forms come from the one oracle, `tests/support/linear_gaussian.py`
(`ConditionalLinearGaussian`); the class check uses an independent classifier
(scikit-learn's logistic regression, test-only) trained here on real digits.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import evaluation, priors
from keras_vae._backend import keras
from keras_vae.hierarchical import HierarchicalVAE
from tests.support.linear_gaussian import LinearGaussian


def _problem(prior_loc=None, prior_scale=1.0, seed=0):
    base = LinearGaussian(column_norms=(2.0, 1.0, 0.5), data_dim=8, noise_scale=0.5, seed=seed)
    shift = 2.0 * np.random.default_rng(seed + 1).normal(size=(3, 8))
    return base.conditional(shift, prior_loc, prior_scale)


@pytest.mark.parametrize("conditional_prior", [False, True])
def test_exact_posterior_gives_log_p_x_given_y_in_every_bound(conditional_prior):
    """With q = p(z|x, y) every log-weight is log p(x|y): ELBO = IWAE = log p^ = exact."""
    rng = np.random.default_rng(5)
    problem = (_problem(rng.normal(size=(3, 3)), (1.5, 0.7, 1.0)) if conditional_prior
               else _problem())
    x, y = problem.sample(120, seed=2)
    # Monte-Carlo KL: the ELBO is then the mean log-weight, exact per example too
    model = problem.vae(conditional_prior=conditional_prior, analytic_kl=False)
    exact = problem.marginal_log_prob(x, y)
    b = evaluation.bounds(model, x, k=4, labels=y)
    ll = evaluation.log_likelihood(model, x, k=8, chunk_size=4, labels=y)
    np.testing.assert_allclose(b.elbo, exact, atol=2e-3)
    np.testing.assert_allclose(b.iwae, exact, atol=2e-3)
    np.testing.assert_allclose(ll.values, exact, atol=2e-3)
    np.testing.assert_allclose(evaluation.effective_sample_size(
        model, x, k=16, labels=y).values, 16.0, rtol=1e-3)
    # the same data as (x, y) tuple; the wrong labels fit worse (the condition is used)
    np.testing.assert_allclose(evaluation.bounds(model, (x, y), k=4).elbo, b.elbo, atol=1e-5)
    wrong = evaluation.log_likelihood(model, x, k=8, labels=(y + 1) % 3).values
    assert wrong.mean() < exact.mean() - 5.0


def test_shifted_posterior_loses_exactly_the_kl_to_the_true_posterior():
    """ELBO = log p(x|y) - KL(q || p(z|x, y)); a loc shift u gives KL = sum_j u^2 / (2 Sigma_j)."""
    problem = _problem(np.random.default_rng(3).normal(size=(3, 3)), 0.8)
    x, y = problem.sample(60, seed=4)
    model = problem.vae(conditional_prior=True, loc_shift=0.3)
    exact = problem.marginal_log_prob(x, y)
    gap = 0.5 * np.sum(0.3 ** 2 / problem.posterior_variance)
    b = evaluation.bounds(model, x, k=2000, chunk_size=500, labels=y)
    assert abs((exact - b.elbo).mean() - gap) < 0.02, ((exact - b.elbo).mean(), gap)
    assert 0.0 < (exact - b.iwae).mean() < gap  # IWAE_k: between the ELBO and log p(x|y)


def _tiny(num_classes=10, **kwargs):
    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(128, activation="relu")], name="encoder")
    decoder = keras.Sequential([keras.Input((8 + (num_classes or 0),)),
                                keras.layers.Dense(128, activation="relu"),
                                keras.layers.Dense(784, name="logits"),
                                keras.layers.Reshape((28, 28, 1))], name="decoder")
    return keras_vae.VAE(latent_dim=8, event_shape=(28, 28, 1), encoder=encoder,
                         decoder=decoder, num_classes=num_classes, seed=1, **kwargs)


def test_samples_requested_as_a_class_are_classified_as_that_class():
    from sklearn.linear_model import LogisticRegression

    ds = keras_vae.data.load("embedded")
    x, y = ds.x_train, ds.y_train
    classifier = LogisticRegression(max_iter=300, C=0.05).fit(x.reshape(len(x), -1), y)
    held_out = classifier.score(ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)
    keras.utils.set_random_seed(0)
    accuracies = {}
    for name, model, labels in (("conditional", _tiny(), y), ("unconditional", _tiny(None), None)):
        model.initialize_output_bias(x)
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
        model.fit(x, labels, epochs=12, batch_size=100, verbose=0)
        requested = np.repeat(np.arange(10), 30)
        images = model.sample(300, labels=requested if labels is not None else None, seed=3)
        predicted = classifier.predict(np.asarray(images).reshape(300, -1))
        accuracies[name] = float(np.mean(predicted == requested))
    message = (f"class accuracy of the samples {accuracies} under a logistic regression with "
               f"held-out accuracy {held_out:.3f} on real digits (chance 0.1)")
    assert held_out > 0.85, message
    assert accuracies["conditional"] > 0.35, message  # measured 0.49 (unconditional 0.12)
    assert accuracies["conditional"] > accuracies["unconditional"] + 0.25, message


@pytest.mark.parametrize("objective, prior, extra", [
    ("iwae", "mixture", {}), ("piwae", "vamp", {}), ("elbo", "normal", {"conditional_prior": True}),
    ("ciwae", "normal", {"gradient_estimator": "dreg"}),
])
def test_every_objective_and_prior_fits_and_round_trips(tmp_path, objective, prior, extra):
    rng = np.random.default_rng(0)
    x = (rng.random((32, 4, 4, 1)) > 0.5).astype("float32")
    y = rng.integers(0, 3, 32)
    model = keras_vae.VAE(latent_dim=2, event_shape=(4, 4, 1), encoder="mlp", num_classes=3,
                          prior=prior, objective=keras_vae.objectives.get(objective),
                          seed=2, **extra)
    model.compile(optimizer="adam")
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=(x, y))
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])
    path = tmp_path / "cvae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.num_classes == 3 and loaded.condition_dim == 3 and loaded.is_conditional
    assert type(loaded.prior) is type(model.prior)
    z, c = rng.normal(size=(5, 2)).astype("float32"), model.condition_vector([0, 1, 2, 2, 0])
    np.testing.assert_allclose(loaded.decoder_parameters(z, c)["mean"],
                               model.decoder_parameters(z, c)["mean"], atol=1e-6)
    for a, b in zip(loaded.encoder_parameters(x[:5], c), model.encoder_parameters(x[:5], c)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(loaded.sample(4, labels=1, seed=5), model.sample(4, labels=1, seed=5),
                               atol=1e-6)
    np.testing.assert_allclose(loaded.compute_terms(x[:4], 3, seed=1, condition=y[:4])
                               .log_weights(), model.compute_terms(x[:4], 3, seed=1,
                                                                   condition=y[:4]).log_weights(),
                               atol=1e-4)


def test_class_conditional_prior_components_and_draws():
    model = keras_vae.VAE(latent_dim=2, event_shape=(3,), encoder="mlp", likelihood="gaussian",
                          num_classes=4, conditional_prior=True)
    assert isinstance(model.prior, priors.ClassConditionalPrior)
    loc, scale = model.prior.class_components()
    assert loc.shape == scale.shape == (4, 2) and loc.dtype == np.float32
    z = model.sample_latents(20000, temperature=0.5, seed=3, labels=2).numpy()
    np.testing.assert_allclose(z.mean(0), loc[2], atol=4 * 0.5 * scale[2].max() / np.sqrt(20000))
    np.testing.assert_allclose(z.std(0), 0.5 * scale[2], rtol=0.03)
    np.testing.assert_allclose(model.sample_latents(3, temperature=0.0, labels=[0, 1, 3]),
                               loc[[0, 1, 3]], atol=1e-6)
    assert "conditional_prior" not in keras_vae.VAE(event_shape=(3,), likelihood="gaussian",
                                                    latent_dim=2).get_config()


def test_real_condition_vectors_mixed_precision_and_a_strategy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6)).astype("float32")
    cond = rng.normal(size=(32, 2, 2)).astype("float32")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        import tensorflow as tf

        with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
            model = keras_vae.VAE(latent_dim=2, event_shape=(6,), encoder="mlp",
                                  likelihood="gaussian", condition_shape=(2, 2),
                                  conditional_prior=True)
            model.compile(optimizer="adam")
        history = model.fit(x, cond, epochs=1, batch_size=16, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])
    assert model.num_classes is None and model.condition_dim == 4
    assert model.sample(3, labels=cond[0], seed=1).shape == (3, 6)
    np.testing.assert_allclose(model.condition_vector(cond[:2]), cond[:2].reshape(2, 4))


def test_wrong_labels_get_clear_errors():
    model = keras_vae.VAE(latent_dim=2, event_shape=(4,), encoder="mlp", likelihood="gaussian",
                          num_classes=3)
    x = np.zeros((6, 4), "float32")
    with pytest.raises(ValueError, match=r"labels\[1\] = 3 is outside the classes 0..2"):
        model.sample(2, labels=[0, 3])
    with pytest.raises(ValueError, match=r"labels\[0\] = -1 is outside"):
        model.condition_vector([-1])
    with pytest.raises(ValueError, match=r"= 1.5 is not an integer class label"):
        model.reconstruct(x[:1], labels=[1.5])
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        model.condition_vector(np.zeros((2, 2, 2), "int64"))
    with pytest.raises(ValueError, match="dtype"):
        model.condition_vector(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"conditional \(num_classes=3\).*needs the labels"):
        model.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y\[5\] = 7 is outside the classes 0..2"):
        model.fit(x, np.array([0, 1, 2, 0, 1, 7]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="one label per example"):
        model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs the labels"):
        model.sample(2)
    with pytest.raises(ValueError, match="give labels="):
        evaluation.log_likelihood(model, x, k=2)
    plain = keras_vae.VAE(latent_dim=2, event_shape=(4,), encoder="mlp", likelihood="gaussian")
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, labels=1)
    plain.compile(optimizer="adam")
    plain.fit(x, np.arange(6), epochs=1, verbose=0)  # an unconditional model ignores y


def test_bad_constructions_say_why():
    with pytest.raises(ValueError, match="not both"):
        keras_vae.VAE(event_shape=(4,), num_classes=3, condition_shape=(2,))
    with pytest.raises(ValueError, match=">= 2"):
        keras_vae.VAE(event_shape=(4,), num_classes=1)
    with pytest.raises(ValueError, match="needs a conditional model"):
        keras_vae.VAE(event_shape=(4,), likelihood="gaussian", conditional_prior=True)
    with pytest.raises(ValueError, match="leave prior='normal'"):
        keras_vae.VAE(event_shape=(4,), likelihood="gaussian", num_classes=3, prior="mixture",
                      conditional_prior=True)
    with pytest.raises(TypeError, match="num_classes: conditioning the chain"):
        HierarchicalVAE(event_shape=(4,), num_classes=3)


def test_cli_train_conditional_then_sample_a_label_and_one_row_per_class(tmp_path, capsys):
    import json

    from keras_vae import cli

    run = tmp_path / "run"
    assert cli.main(["train", "--out", str(run), "--conditional", "--prior", "class_conditional",
                     "--train-examples", "200", "--test-examples", "50", "--batch-size", "50",
                     "--epochs", "1", "--seed", "3", "--no-jit", "--verbose", "0"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["conditional"] is True and config["data"]["num_classes"] == 10
    assert (run / "pictures" / "classes.png").is_file()
    model = keras.saving.load_model(run / "model.keras")
    assert model.num_classes == 10 and isinstance(model.prior, priors.ClassConditionalPrior)
    assert cli.main(["sample", str(run), "--label", "3", "-n", "4", "--npy",
                     str(tmp_path / "threes.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "threes.npy"),
                               model.sample(4, labels=3, seed=0), atol=1e-5)
    assert cli.main(["sample", str(run), "--out", str(tmp_path / "rows.png")]) == 0
    from PIL import Image
    from keras_vae import plotting

    assert Image.open(tmp_path / "rows.png").size == plotting.grid_size(10, 10, labelled=True)
    capsys.readouterr()
    assert cli.main(["sample", str(run), "--label", "10"]) != 0
    assert "outside the classes 0..9" in capsys.readouterr().err
