"""keras_vae.data: real data sets offline, binarisation, the IWAE split, user files and their errors."""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_vae import data
from keras_vae._backend import keras

REPO = pathlib.Path(__file__).resolve().parents[1]

# The label counts of the full training sets (shared/datasets/README.md).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist")


def test_mnist_loads_offline_as_float_images_in_the_unit_interval(mnist):
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.float32 and mnist.event_shape == (28, 28, 1)
    assert mnist.x_train.min() == 0.0 and mnist.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(mnist.y_train), MNIST_TRAIN_COUNTS)
    assert mnist.y_test.shape == (10000,) and mnist.x_valid is None
    # Grey values are the 0-255 pixels over 255, unchanged.
    (raw, _), _ = keras.datasets.mnist.load_data()
    np.testing.assert_array_equal(mnist.x_train[..., 0] * 255.0, raw.astype("float32"))


def test_fashion_mnist_loads_offline():
    fashion = data.load("fashion_mnist")
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert fashion.x_train.dtype == np.float32 and 0.0 <= fashion.x_train.min()
    assert fashion.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(fashion.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(fashion.y_test), [1000] * 10)
    assert fashion.name == "fashion_mnist"


def test_the_embedded_set_is_the_first_mnist_digits(mnist):
    embedded = data.load("embedded")
    assert embedded.x_train.shape == (3000, 28, 28, 1) and embedded.x_test.shape == (1000, 28, 28, 1)
    np.testing.assert_array_equal(embedded.x_train, mnist.x_train[:3000])
    np.testing.assert_array_equal(embedded.y_train, mnist.y_train[:3000])
    np.testing.assert_array_equal(embedded.x_test, mnist.x_test[:1000])
    np.testing.assert_array_equal(embedded.y_test, mnist.y_test[:1000])
    asset = REPO / "keras_vae" / "assets" / data.EMBEDDED_FILE
    assert asset.stat().st_size < 1.5e6
    assert "CC BY-SA 3.0" in (REPO / "keras_vae" / "assets" / "README.md").read_text()


def test_the_embedded_set_loads_with_no_keras_cache_and_no_network(tmp_path):
    """A fresh interpreter, KERAS_HOME an empty folder, every socket connection refused."""
    script = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse

        from keras_vae import data
        ds = data.load("embedded", binarization="static", seed=1)
        assert ds.x_train.shape == (3000, 28, 28, 1), ds.x_train.shape
        assert set(map(float, set(ds.x_train.ravel().tolist()))) <= {0.0, 1.0}
        try:
            data.load("mnist")
        except OSError as error:
            assert "embedded" in str(error), error
        else:
            raise AssertionError("mnist loaded with no cache and no network")
        print("EMBEDDED OK", len(ds.x_train), len(ds.x_test))
    """)
    home = tmp_path / "empty_keras_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KERAS_HOME"}
    env.update(KERAS_HOME=str(home), HOME=str(tmp_path), KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EMBEDDED OK 3000 1000" in result.stdout
    assert not list(home.rglob("*.npz"))  # nothing was downloaded into the cache


# --------------------------------------------------------------------------- splits, binarisation


def test_iwae_split_holds_out_the_last_400_training_images(mnist):
    split = data.load("mnist", split="iwae")
    assert split.x_train.shape[0] == 59600 and split.x_valid.shape == (400, 28, 28, 1)
    np.testing.assert_array_equal(split.x_valid, mnist.x_train[-400:])
    np.testing.assert_array_equal(split.y_valid, mnist.y_train[-400:])
    np.testing.assert_array_equal(split.x_train, mnist.x_train[:-400])
    assert split.protocol["split"] == "iwae" and split.protocol["num_valid"] == 400


def test_static_binarization_is_one_seeded_bernoulli_draw():
    x = np.random.default_rng(0).random((200, 28, 28, 1)).astype("float32")
    a, b, c = data.binarize(x, seed=4), data.binarize(x, seed=4), data.binarize(x, seed=5)
    assert a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert 0.3 < np.mean(a != c) < 0.37  # P(differ) = E[2 x (1 - x)] = 1/3 for x ~ U(0, 1)
    # E[x_bin] = x: the mean of 0/1 draws where x is in a bin matches the bin's mean.
    for low in (0.0, 0.3, 0.6, 0.9):
        inside = (x >= low) & (x < low + 0.1)
        assert np.mean(a[inside]) == pytest.approx(np.mean(x[inside]), abs=0.01)
    zeros_and_ones = np.array([[0.0, 1.0, 1.0, 0.0]], "float32")
    np.testing.assert_array_equal(data.binarize(zeros_and_ones, seed=0), zeros_and_ones)


def test_load_binarizes_the_test_set_once_with_the_fixed_seed():
    grey = data.load("embedded")
    dynamic = data.load("embedded", binarization="dynamic")
    static = data.load("embedded", binarization="static", seed=7)
    expected = data.binarize(grey.x_test, data.TEST_BINARIZATION_SEED)
    np.testing.assert_array_equal(dynamic.x_test, expected)
    np.testing.assert_array_equal(static.x_test, expected)
    np.testing.assert_array_equal(dynamic.x_train, grey.x_train)  # binarised per use instead
    np.testing.assert_array_equal(static.x_train, data.binarize(grey.x_train, 7))
    assert static.protocol["train_binarization_seed"] == 7
    assert dynamic.protocol["test_binarization_seed"] == data.TEST_BINARIZATION_SEED


def test_dynamic_binarization_draws_afresh_each_epoch_and_is_seeded():
    x = np.random.default_rng(1).random((8, 28, 28, 1)).astype("float32")

    def epochs(seed, n):
        ds = data.dynamic_binarization(x, batch_size=4, seed=seed, shuffle=False)
        return [np.concatenate([b.numpy() for b in ds]) for _ in range(n)]

    first, second = epochs(seed=3, n=2)
    assert first.shape == x.shape and first.dtype == np.float32
    assert set(np.unique(first)) <= {0.0, 1.0}
    assert 0.3 < np.mean(first != second)  # a fresh draw in every epoch
    again = epochs(seed=3, n=2)
    np.testing.assert_array_equal(again[0], first)  # the same seed, the same stream
    np.testing.assert_array_equal(again[1], second)
    other = epochs(seed=4, n=1)[0]
    assert 0.3 < np.mean(other != first)
    draws = np.stack(epochs(seed=0, n=100))
    assert np.abs(draws.mean(axis=0) - x).mean() < 0.05  # E[x_bin] = x


def test_dynamic_binarization_keeps_labels_with_their_images_when_shuffled():
    labels = np.arange(50) % 2
    x = np.broadcast_to(labels[:, None, None, None], (50, 4, 4, 1)).astype("float32")
    ds = data.dynamic_binarization(x, batch_size=16, seed=0, y=labels)
    seen = []
    for images, y in ds:
        np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], y.numpy())
        seen += y.numpy().tolist()
    assert sorted(seen) == sorted(labels.tolist())
    order = [int(v) for v, _ in zip(ds.unbatch().map(lambda a, b: b), range(50))]
    assert order != labels.tolist()  # shuffled


def test_a_vae_trains_on_the_dynamic_pipeline():
    import keras_vae

    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(8, activation="tanh")])
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(784),
                                keras.layers.Reshape((28, 28, 1))])
    model = keras_vae.VAE(latent_dim=2, encoder=encoder, decoder=decoder, seed=0)
    model.compile(optimizer="adam")
    embedded = data.load("embedded", binarization="dynamic")
    history = model.fit(data.dynamic_binarization(embedded.x_train[:64], batch_size=32, seed=0),
                        epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))


# --------------------------------------------------------------------------- user data


def _save_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def test_user_npy_of_uint8_pixels_is_scaled_and_gets_a_channel(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype="uint8")
    np.save(tmp_path / "images.npy", pixels)
    ds = data.load(tmp_path / "images.npy", test_fraction=0.25)
    assert ds.x_train.shape == (15, 8, 8, 1) and ds.x_test.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(ds.x_train[..., 0], pixels[:15] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[..., 0], pixels[15:] / 255.0, rtol=1e-6)
    assert ds.y_train is None and ds.name == str(tmp_path / "images.npy")


def test_user_npz_with_splits_labels_or_one_array(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((30, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 30)
    np.savez(tmp_path / "split.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    ds = data.load(str(tmp_path / "split.npz"), split="full")
    np.testing.assert_array_equal(ds.x_train, x[:20])
    np.testing.assert_array_equal(ds.y_test, y[20:])
    np.savez_compressed(tmp_path / "xy.npz", x=x, y=y)
    ds = data.load(tmp_path / "xy.npz", test_fraction=0.1)
    assert len(ds.x_train) == 27 and len(ds.y_test) == 3
    np.savez(tmp_path / "one.npz", x[:, :, :, 0] > 0.5)  # bool images
    ds = data.load(tmp_path / "one.npz", binarization="static")
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (30, 6, 6, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], (x[..., 0] > 0.5).astype("float32"))


def test_user_floats_outside_the_unit_interval_are_fine_for_a_gaussian(tmp_path):
    x = np.random.default_rng(2).normal(size=(10, 4, 4)).astype("float64") * 3
    np.save(tmp_path / "real.npy", x)
    ds = data.load(tmp_path / "real.npy", likelihood="gaussian")
    np.testing.assert_allclose(ds.x_train[..., 0], x.astype("float32"))
    with pytest.raises(ValueError, match="values above 1"):
        data.load(tmp_path / "real.npy")


def test_user_folder_of_images_flat_and_in_class_folders(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 10, 12), dtype="uint8")
    _save_pngs(tmp_path / "flat", images)
    ds = data.load(tmp_path / "flat")
    assert ds.x_train.shape == (6, 10, 12, 1) and ds.y_train is None
    np.testing.assert_allclose(ds.x_train[..., 0], images / 255.0, rtol=1e-6)
    _save_pngs(tmp_path / "classes" / "cat", images[:2])
    _save_pngs(tmp_path / "classes" / "dog", images[2:5])
    ds = data.load(tmp_path / "classes", event_shape=(10, 12, 1))
    np.testing.assert_array_equal(ds.y_train, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(ds.x_train[2, ..., 0], images[2] / 255.0, rtol=1e-6)


# --------------------------------------------------------------------------- user errors


def _bad_files(tmp_path):
    """(path, load kwargs, exception, message) for every kind of bad input."""
    good = np.random.default_rng(4).random((5, 4, 4)).astype("float32")
    cases = []

    def npy(name, array, kwargs=None, error=ValueError, match=""):
        np.save(tmp_path / name, array)
        cases.append((tmp_path / name, kwargs or {}, error, match))

    cases.append((tmp_path / "missing.npy", {}, FileNotFoundError, "No such data file"))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    cases.append((tmp_path / "corrupt.npy", {}, ValueError, "corrupt"))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    cases.append((tmp_path / "corrupt.npz", {}, ValueError, "corrupt"))
    (tmp_path / "folder_corrupt").mkdir()
    (tmp_path / "folder_corrupt" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases.append((tmp_path / "folder_corrupt", {}, ValueError, "not a readable image"))
    (tmp_path / "empty_folder").mkdir()
    cases.append((tmp_path / "empty_folder", {}, ValueError, "holds no images"))
    _save_pngs(tmp_path / "mixed_sizes", [np.zeros((4, 4), "uint8")])
    from PIL import Image
    Image.fromarray(np.zeros((5, 4), "uint8")).save(tmp_path / "mixed_sizes" / "z.png")
    cases.append((tmp_path / "mixed_sizes", {}, ValueError, "differ in shape"))
    (tmp_path / "data.csv").write_text("1,2,3\n")
    cases.append((tmp_path / "data.csv", {}, ValueError, "unknown data format"))
    npy("flat.npy", good.reshape(5, 16), match="expected images")
    npy("channels.npy", good.reshape(5, 4, 4, 1).repeat(5, axis=-1), match="channels")
    npy("empty.npy", np.zeros((0, 4, 4), "float32"), match="empty")
    npy("text.npy", np.array([["a"] * 4] * 4), match="dtype")
    nan = good.copy()
    nan[2, 1, 3] = np.nan
    npy("nan.npy", nan, match=r"NaN at index \(2, 1, 3\)")
    inf = good.copy()
    inf[0, 0, 0] = np.inf
    npy("inf.npy", inf, kwargs={"likelihood": "gaussian"}, match="Inf")
    npy("above_one.npy", good * 2.0 + 1.0, match="values above 1")
    npy("above_one_cb.npy", good + 1.0, kwargs={"likelihood": "continuous_bernoulli"},
        match="values above 1")
    npy("negative.npy", good - 0.5, match="negative values")
    npy("int_range.npy", np.full((3, 4, 4), 300, "int32"), match=r"integers in \[300, 300\]")
    npy("wrong_event.npy", good, kwargs={"event_shape": (28, 28, 1)}, match="event_shape")
    np.savez(tmp_path / "labels.npz", x=good, y=np.arange(4))
    cases.append((tmp_path / "labels.npz", {}, ValueError, "one per example"))
    np.savez(tmp_path / "keys.npz", a=good, b=good)
    cases.append((tmp_path / "keys.npz", {}, ValueError, "expected 'x_train'"))
    np.savez(tmp_path / "test_shape.npz", x_train=good, x_test=good[:, :3])
    cases.append((tmp_path / "test_shape.npz", {}, ValueError, "x_test examples have shape"))
    return cases


def test_every_bad_user_input_gets_its_error(tmp_path):
    cases = _bad_files(tmp_path)
    assert len(cases) >= 20
    for path, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            data.load(path, **kwargs)
    # A bad file never passes silently: the message names the file.
    with pytest.raises(ValueError, match="nan.npy"):
        data.load(tmp_path / "nan.npy")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"binarization": "dynamic", "likelihood": "gaussian"}, ValueError, "Bernoulli likelihood"),
    ({"binarization": "sometimes"}, ValueError, "binarization must be one of"),
    ({"split": "random"}, ValueError, "split must be one of"),
    ({"test_fraction": 1.0}, ValueError, "test_fraction"),
])
def test_load_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load("embedded", **kwargs)


def test_load_rejects_bad_names_and_binarize_bad_values(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist_typo"):
        data.load("mnist_typo")  # not a name: read as a path, which does not exist
    with pytest.raises(TypeError, match="a name"):
        data.load(3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.binarize(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.dynamic_binarization(np.array([[0.5, np.nan]]), batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        data.dynamic_binarization(np.zeros((2, 2)), batch_size=0)
    np.save(tmp_path / "small.npy", np.zeros((10, 4, 4), "float32"))
    with pytest.raises(ValueError, match="holds out the last 400"):
        data.load(tmp_path / "small.npy", split="iwae")
