"""Test set-up: real data sets offline, from ../shared/datasets, through Keras's own cache.

KERAS_HOME must be set before Keras is imported (Keras reads it at import), so
this runs at the top of the first conftest. `.ci/run` seeds it itself; a local
`pytest` seeds a temporary copy here. Nothing is ever written into ../shared.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = pathlib.Path(
    os.environ.get("KERAS_VAE_SHARED_DATASETS", REPO.parent / "shared" / "datasets")
)


def _seed_keras_home():
    if "KERAS_HOME" in os.environ or not SHARED_DATASETS.is_dir():
        return
    home = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_home_"))
    (home / "datasets").symlink_to(SHARED_DATASETS, target_is_directory=True)
    os.environ["KERAS_HOME"] = str(home)


_seed_keras_home()

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mnist_binary():
    """2,000 training and 500 test MNIST digits in [0, 1] (float32), from the Keras cache."""
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = (x_train[:2000, ..., None] / 255.0).astype("float32")
    x_test = (x_test[:500, ..., None] / 255.0).astype("float32")
    return x_train, y_train[:2000], x_test, y_test[:500]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def exported_vae(tmp_path_factory, mnist_binary):
    """The export folder (manifest.json, savedmodel/vae/1, onnx/, tflite/) of a small VAE
    trained on MNIST, written once per session by the real `keras_vae.export.export_all`."""
    from serving_support import export_tiny_vae

    out = tmp_path_factory.mktemp("export") / "out"
    export_tiny_vae(out, mnist_binary)
    return out


@pytest.fixture(scope="session")
def exported_conditional(tmp_path_factory, mnist_binary):
    """(export folder, Keras model, manifest) of a small class-conditional VAE (10 classes,
    p(z|y) learned), exported once per session by `export_all` (model name 'cvae')."""
    from serving_support import export_conditional_vae

    out = tmp_path_factory.mktemp("export_conditional") / "out"
    model, manifest = export_conditional_vae(out, mnist_binary)
    return out, model, manifest
