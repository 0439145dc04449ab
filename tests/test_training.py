"""Training through model.fit: real MNIST, save/load, callbacks, precision, distribution."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae


def _dynamic(x, batch_size, seed):
    """Dynamically binarised batches: a fresh Bernoulli draw each time an image is used."""
    return (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(len(x), seed=seed)
        .batch(batch_size)
        .map(lambda b: tf.cast(tf.random.uniform(tf.shape(b)) < b, "float32"))
    )


def _static(x, seed=123):
    return (np.random.default_rng(seed).random(x.shape) < x).astype("float32")


def test_training_on_mnist_lowers_the_held_out_loss(mnist_binary):
    x_train, _, x_test, _ = mnist_binary
    x_val = _static(x_test)
    model = keras_vae.VAE(encoder="mlp", latent_dim=8, objective=keras_vae.IWAE(k=3), seed=0)
    model.initialize_output_bias(x_train)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = model.evaluate(x_val, batch_size=250, verbose=0, return_dict=True)
    history = model.fit(_dynamic(x_train, 100, 0), epochs=4, verbose=0,
                        validation_data=(x_val,), validation_batch_size=250)
    after = model.evaluate(x_val, batch_size=250, verbose=0, return_dict=True)
    assert set(history.history) >= {"loss", "elbo", "reconstruction", "kl", "iwae_3",
                                    "val_loss", "val_iwae_3"}
    assert after["loss"] < before["loss"] - 40, (before, after)
    # Logged bounds are the bounds' values: ELBO <= IWAE_3, loss = -IWAE_3 (beta = 1).
    assert after["elbo"] <= after["iwae_3"] + 1e-3
    assert after["loss"] == pytest.approx(-after["iwae_3"], rel=1e-5)
    assert after["elbo"] == pytest.approx(after["reconstruction"] - after["kl"], rel=1e-4)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.fixture(scope="module")
def trained(mnist_binary):
    x = _static(mnist_binary[0][:400])
    model = keras_vae.VAE(encoder="mlp", latent_dim=4, likelihood="bernoulli",
                          prior="mixture", objective=keras_vae.MIWAE(2, 2), seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, epochs=1, batch_size=100, verbose=0)
    return model, x


def test_save_and_load_round_trip(trained, tmp_path):
    model, x = trained
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_vae.VAE)
    assert loaded.objective.get_config() == model.objective.get_config()
    assert isinstance(loaded.prior, keras_vae.priors.MixtureOfGaussiansPrior)
    z = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    for key, value in model.decoder_parameters(z).items():
        np.testing.assert_array_equal(loaded.decoder_parameters(z)[key].numpy(), value.numpy())
    np.testing.assert_array_equal(loaded.encode(x[:3]).mean(), model.encode(x[:3]).mean())
    np.testing.assert_array_equal(loaded.prior_distribution().log_prob(z),
                                  model.prior_distribution().log_prob(z))
    # The optimizer state travels too: training continues from the same step.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    loaded.fit(x, epochs=1, batch_size=100, verbose=0)


def test_save_weights_and_load_weights(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    fresh = keras_vae.VAE.from_config(model.get_config())
    fresh.load_weights(path)
    z = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(fresh.decoder_parameters(z)["mean"],
                                  model.decoder_parameters(z)["mean"])


def test_model_checkpoint_and_backup_and_restore(mnist_binary, tmp_path):
    x = _static(mnist_binary[0][:300])
    backup = tmp_path / "backup"

    class Killed(Exception):
        pass

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Killed("simulated kill")

    def make():
        model = keras_vae.VAE(encoder="mlp", latent_dim=4, seed=5)
        model.compile(optimizer="adam")
        return model

    model = make()
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="loss",
                                                 save_best_only=True)
    with pytest.raises(Killed):
        model.fit(x, epochs=4, batch_size=100, verbose=0,
                  callbacks=[checkpoint, keras.callbacks.BackupAndRestore(backup), Interrupt()])
    assert (tmp_path / "best.keras").exists()
    keras.models.load_model(tmp_path / "best.keras")
    resumed = make()
    history = resumed.fit(x, epochs=4, batch_size=100, verbose=0,
                          callbacks=[keras.callbacks.BackupAndRestore(backup)])
    # Epochs 0 and 1 were done before the kill: only 2 and 3 run now.
    assert len(history.history["loss"]) == 2
    assert int(resumed.optimizer.iterations) == 4 * 3


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_without_nan(policy, mnist_binary):
    x = _static(mnist_binary[0][:600])
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras_vae.VAE(encoder="conv", latent_dim=4, objective=keras_vae.IWAE(k=2),
                              seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        assert model.decoder.compute_dtype in ("float16", "bfloat16")
        history = model.fit(x, epochs=2, batch_size=100, verbose=0)
        loc, scale = model.encoder_parameters(x[:4])
        assert loc.dtype == tf.float32 and scale.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert int(model.nonfinite_steps.numpy()) == 0


def test_jit_compile_and_steps_per_execution(mnist_binary):
    x = _static(mnist_binary[0][:400])
    results = {}
    for jit in (False, True):
        for spe in (1, 4):
            keras.utils.set_random_seed(0)  # the same initial weights every time
            model = keras_vae.VAE(encoder="mlp", latent_dim=4, seed=7)
            model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit,
                          steps_per_execution=spe)
            results[jit, spe] = model.fit(x, epochs=1, batch_size=100, shuffle=False,
                                          verbose=0).history["loss"][0]
    # Grouping steps changes nothing but speed: same seed, data and noise.
    assert results[False, 4] == pytest.approx(results[False, 1], rel=1e-5)
    assert results[True, 4] == pytest.approx(results[True, 1], rel=1e-5)
    # XLA draws its own random stream from the same seed: equal in distribution only.
    assert results[True, 1] == pytest.approx(results[False, 1], rel=5e-3)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, keras_vae

    class FixedScalePosterior(keras_vae.posteriors.DiagonalGaussianPosterior):
        # A fixed posterior scale of 1e-6 makes z = loc up to 1e-6 and, with the
        # analytic KL, every logged term a function of loc alone: no sampling noise,
        # so one device and two must see the same numbers (the check is on the
        # global-batch loss scaling and the cross-replica metrics).
        def call(self, features):
            loc, _ = super().call(features)
            return loc, tf.fill(tf.shape(loc), 1e-6)

    def run(strategy):
        keras.utils.set_random_seed(0)  # the same initial weights for both runs
        with strategy.scope():
            model = keras_vae.VAE(encoder="mlp", latent_dim=3,
                                  posterior=FixedScalePosterior(3, min_scale=0.0),
                                  objective=keras_vae.ELBO(), analytic_kl=True, seed=0)
            model.compile(optimizer=keras.optimizers.SGD(0.002), jit_compile=False)
        x = np.load(sys.argv[1])
        initial = [w.copy() for w in model.encoder.get_weights() + model.decoder.get_weights()]
        history = model.fit(x, epochs=2, batch_size=64, shuffle=False, verbose=0)
        return {"history": {k: [float(np.ravel(v)[0]) for v in vs]
                            for k, vs in history.history.items()},
                "updates": [(w - w0).tolist() for w, w0 in zip(
                    model.encoder.get_weights() + model.decoder.get_weights(), initial)],
                "replicas": strategy.num_replicas_in_sync}

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    single = run(tf.distribute.OneDeviceStrategy(devices[0]))
    mirrored = run(tf.distribute.MirroredStrategy(devices))
    print("RESULT " + json.dumps({"single": single, "mirrored": mirrored}))
    """
)


def test_mirrored_strategy_matches_one_device(mnist_binary, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, _static(mnist_binary[0][:256]))
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(data)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, out.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    single, mirrored = result["single"], result["mirrored"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    for key, values in single["history"].items():
        # Two replicas sum their gradients in another order: float round-off only.
        np.testing.assert_allclose(mirrored["history"][key], values, rtol=2e-5, err_msg=key)
    # The weight updates agree to within 2 % (round-off, ReLU units at their kink and the
    # 1e-6 posterior noise; measured 0.8 %); a loss scaled per replica instead of by the
    # global batch would make them differ by a factor of 2 (100 %).
    for a, b in zip(single["updates"], mirrored["updates"]):
        a, b = np.array(a), np.array(b)
        assert np.linalg.norm(a) > 0
        assert np.linalg.norm(b - a) <= 2e-2 * np.linalg.norm(a)


def test_training_helpers_and_their_old_names():
    from keras_vae import model as model_lib
    from keras_vae import objectives, training

    assert objectives.kl_weight_schedule is training.kl_weight_schedule
    assert model_lib.StopOnNonFiniteLoss is training.StopOnNonFiniteLoss
    assert float(training.kl_weight_schedule(5, 2.0, 10)) == 1.0
    assert float(training.kl_weight_schedule(50, 2.0, 10)) == 2.0
    vae = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1),
                        objective=keras_vae.MIWAE(2, 2))
    mask = training.encoder_mask(vae)
    encoder_side = sum(len(l.trainable_variables) for l in vae.encoder_layers)
    assert sum(mask) == encoder_side and mask == vae._split_variables()
    assert training.metric_names(vae.objective) == ["loss", "elbo", "reconstruction", "kl",
                                                    "iwae_4", "miwae"]


@pytest.mark.parametrize("bad_step", [0, 4, 9])
def test_a_nan_inside_an_execution_freezes_the_weights_at_the_step_before(bad_step):
    """A NaN batch at step s of an execution of 10 steps: the weights end exactly as
    after steps 0..s-1 alone, though the callbacks only run after the 10th step."""
    rng = np.random.default_rng(0)
    x = (rng.random((80, 4, 4, 1)) < 0.3).astype("float32")

    def make():
        keras.utils.set_random_seed(0)
        model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)
        model.compile(optimizer="adam", steps_per_execution=10)
        return model

    bad = x.copy()
    bad[bad_step * 8 + 3, 1, 2, 0] = np.nan  # one pixel of batch `bad_step`; the first
    poisoned, clean = make(), make()         # batch is checked by fit, so s = 0 goes in raw
    data = tf.data.Dataset.from_tensor_slices(bad).batch(8)
    with pytest.warns(RuntimeWarning, match=f"at batch {bad_step} of epoch 1 "):
        if bad_step == 0:
            keras.Model.fit(poisoned, data, epochs=2, verbose=0,
                            callbacks=[keras_vae.training.StopOnNonFiniteLoss()])
        else:
            poisoned.fit(data, epochs=2, verbose=0)
    if bad_step:
        clean.fit(tf.data.Dataset.from_tensor_slices(x[: bad_step * 8]).batch(8), verbose=0)
    assert int(poisoned.optimizer.iterations) == int(clean.optimizer.iterations) == bad_step
    assert int(poisoned.nonfinite_steps.numpy()) == 1
    for a, b in zip(poisoned.weights, clean.weights):
        if "nonfinite" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
