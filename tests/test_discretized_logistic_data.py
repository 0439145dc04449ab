"""8-bit data end to end: loaders keep integers, bits/dim, train + evaluate + save/load, the CLI."""

import json
import math

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae import cli, data, evaluation
from keras_vae.evaluation.results import bits_per_dim


def test_bits_per_dim_hand_case():
    assert bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
    assert bits_per_dim(8 * 784 * math.log(2.0), 28 * 28) == pytest.approx(8.0)  # uniform 8 bits
    assert bits_per_dim(1000.0, 10) == pytest.approx(1000.0 / (10 * 0.6931471805599453))
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)


@pytest.mark.parametrize("name", ["embedded", "fashion_mnist"])
def test_eight_bit_loaders_keep_integers(name):
    ds = data.load(name, likelihood="discretized_logistic")
    (raw_train, _), (raw_test, _) = keras_vae.names.DATASETS.get(name)()
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.protocol["binarization"] is None
    np.testing.assert_array_equal(ds.x_train[..., 0], raw_train)
    np.testing.assert_array_equal(ds.x_test[..., 0], raw_test)
    assert ds.x_train.max() == 255 and np.all(ds.x_train == np.round(ds.x_train))
    assert data.load(name, binarization="none", likelihood="bernoulli").x_train.max() <= 1.0
    with pytest.raises(ValueError, match="Bernoulli"):
        data.load(name, binarization="dynamic", likelihood="discretized_logistic")


def test_user_npz_keeps_integers_and_refuses_scaled_data(tmp_path, rng):
    x = rng.integers(0, 256, size=(20, 8, 8)).astype("uint8")
    np.savez(tmp_path / "u8.npz", x_train=x, x_test=x[:5])
    ds = data.load(tmp_path / "u8.npz", likelihood="discretized_logistic")
    np.testing.assert_array_equal(ds.x_train[..., 0], x)
    np.savez(tmp_path / "scaled.npz", x=x / 255.0)
    with pytest.raises(ValueError, match="non-integer"):
        data.load(tmp_path / "scaled.npz", likelihood="discretized_logistic")


def test_tiny_eight_bit_train_evaluate_save_load(tmp_path):
    ds = data.load("embedded", likelihood="discretized_logistic")
    x, x_test = ds.x_train[:200], ds.x_test[:40]
    model = keras_vae.VAE(encoder="conv8", likelihood="discretized_logistic", seed=1)
    model.initialize_output_bias(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, epochs=2, batch_size=50, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    report = evaluation.evaluate_model(model, x_test, k=4, snr_estimates=0, verbose=0,
                                       report_path=tmp_path / "metrics.json")
    ll = report["log_likelihood"]
    assert ll["num_dims"] == 784
    assert ll["bits_per_dim"] == pytest.approx(ll["nll"] / (784 * math.log(2.0)))
    assert 0.0 < ll["bits_per_dim"] < 9.0
    assert json.loads((tmp_path / "metrics.json").read_text())["log_likelihood"]["bits_per_dim"]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    z = model.sample_latents(4, seed=3)
    for key, value in model.decoder_parameters(z).items():
        np.testing.assert_allclose(loaded.decoder_parameters(z)[key].numpy(), value.numpy(),
                                   rtol=1e-5, atol=1e-5)
    images = model.sample(4, seed=2).numpy()
    assert images.shape == (4, 28, 28, 1) and images.min() >= 0 and images.max() <= 255


def test_cli_train_and_evaluate_fashion_mnist_eight_bit(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "--out", str(run), "--likelihood", "discretized_logistic",
                     "--data", "fashion_mnist", "--train-examples", "200", "--test-examples",
                     "50", "--batch-size", "50", "--epochs", "1", "--seed", "3", "--no-jit",
                     "--verbose", "0", "--no-pictures"])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["binarization_used"] == "none"
    code = cli.main(["evaluate", str(run), "--k", "3", "--examples", "20",
                     "--snr-estimates", "0"])
    out = capsys.readouterr().out
    assert code == 0 and "bits/dim" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["log_likelihood"]["bits_per_dim"] > 0
