"""Bad input gets a ValueError naming the problem before the first step; NaN stops training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae


@pytest.fixture(scope="module")
def model():
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, seed=0)
    model.compile(optimizer="adam")
    return model


def _good(n=8):
    return (np.random.default_rng(0).random((n, 28, 28, 1)) < 0.3).astype("float32")


@pytest.mark.parametrize("data, message", [
    (np.zeros((8, 784), "float32"), r"shape \(8, 784\).*expects \(28, 28, 1\)"),
    (np.zeros((8, 28, 28), "float32"), r"shape \(8, 28, 28\)"),
    ((np.arange(8 * 784) % 256).astype("uint8").reshape(8, 28, 28, 1), r"integer values up to 255"),
    (np.where(_good() > 0, np.nan, 0.0).astype("float32"), r"NaN"),
    (np.where(_good() > 0, np.inf, 0.0).astype("float32"), r"Inf"),
    (_good() * 1.5, r"outside the support \[0.0, 1.0\]"),
    (_good() - 0.5, r"outside the support"),
    (np.array(["a"] * 8 * 784).reshape(8, 28, 28, 1), r"dtype"),
])
def test_bad_arrays_raise_before_the_first_step(model, data, message):
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.fit(data, epochs=1, batch_size=4, verbose=0)
    assert int(model.optimizer.iterations) == 0
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_dataset_and_validation_data(model):
    bad = tf.data.Dataset.from_tensor_slices(_good() * 2.0).batch(4)
    with pytest.raises(ValueError, match="first batch.*outside the support"):
        model.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data.*NaN"):
        model.fit(_good(), validation_data=(_good() * np.nan,), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.evaluate(np.zeros((4, 10), "float32"), verbose=0)


@pytest.mark.parametrize("likelihood, data, message", [
    ("continuous_bernoulli", _good() + 1.0, "outside the support"),
    ("gaussian", np.full((8, 28, 28, 1), np.nan, "float32"), "NaN"),
])
def test_each_likelihood_checks_its_support(likelihood, data, message):
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, likelihood=likelihood)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model.fit(data, epochs=1, verbose=0)
    # Gaussian data may take any finite value.
    if likelihood == "gaussian":
        model.fit(_good() * 5 - 2, epochs=1, batch_size=8, verbose=0)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="Unknown preset"):
        keras_vae.VAE(encoder="resnet")
    with pytest.raises(ValueError, match="Unknown likelihood"):
        keras_vae.VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="Unknown prior"):
        keras_vae.VAE(prior="laplace")
    with pytest.raises(ValueError, match="gradient_estimator"):
        keras_vae.VAE(gradient_estimator="reinforce")
    with pytest.raises(ValueError, match="latent_dim is required"):
        keras_vae.VAE(encoder=keras.Sequential([keras.layers.Flatten()]))
    with pytest.raises(ValueError, match="free bits need a factorised prior"):
        keras_vae.VAE(prior="mixture", objective=keras_vae.ELBO(free_bits=0.5))
    model = keras_vae.VAE(latent_dim=2)
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)
    with pytest.raises(ValueError, match="method"):
        model.interpolate(_good(1)[0], _good(1)[0], method="cubic")


class Poison(keras.layers.Layer):
    """Multiplies by a switch that a callback can set to NaN mid-training."""

    def build(self, input_shape):
        self.switch = self.add_weight(shape=(), initializer="ones", trainable=False,
                                      name="switch")

    def call(self, x):
        return x * self.switch


def test_nan_loss_stops_training_and_keeps_the_last_good_weights():
    poison = Poison()
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(784), poison,
                                keras.layers.Reshape((28, 28, 1))])
    model = keras_vae.VAE(encoder="mlp", decoder=decoder, latent_dim=2, seed=0)
    model.compile(optimizer="adam", jit_compile=True)
    saved = {}

    class PoisonAfterThirdBatch(keras.callbacks.Callback):
        # Callbacks run once per execution (steps_per_execution), so the poison lands
        # at the first batch end at or after the third step, whichever batch that is.
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 2 and "step" not in saved:
                saved["weights"] = [w.copy() for w in model.get_weights()]
                saved["step"] = int(model.optimizer.iterations)
                poison.switch.assign(float("nan"))

    steps_per_epoch = 10  # 80 examples, batch 8
    with pytest.warns(RuntimeWarning, match="non-finite loss.*last finite step") as caught:
        history = model.fit(_good(80), epochs=3, batch_size=8, verbose=0,
                            callbacks=[PoisonAfterThirdBatch()])
    # The first non-finite step is the one after the poison; the message names it.
    epoch, batch = divmod(saved["step"], steps_per_epoch)
    assert f"at batch {batch} of epoch {epoch + 1} " in str(caught[0].message)
    assert len(history.history["loss"]) == epoch + 1  # stopped in that epoch
    assert int(model.optimizer.iterations) == saved["step"] >= 3
    assert int(model.nonfinite_steps.numpy()) >= 1
    after = model.get_weights()
    names = [w.path for w in model.weights]
    for name, a, b in zip(names, saved["weights"], after):
        if "switch" in name or "nonfinite" in name or "seed" in name:
            continue
        np.testing.assert_array_equal(a, b, err_msg=name)
