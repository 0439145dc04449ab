"""The data sets `data.load` knows by name, registered in `names.DATASETS`.

Each loader returns `((x_train, y_train), (x_test, y_test))` as uint8 images
[N, H, W] and integer labels; `data.load` scales and checks them. A new data set is
one more loader decorated `@names.DATASETS.register("name")`.
"""

import importlib.resources

import numpy as np

from keras_vae import names
from keras_vae._backend import keras

EMBEDDED_FILE = "mnist_small.npz"


@names.DATASETS.register("embedded",
                         description="3,000 + 1,000 MNIST digits shipped in the package")
def load_embedded():
    """The 3,000 + 1,000 MNIST digits shipped in the package: ((x, y), (x, y)), uint8.

    See keras_vae/assets/README.md for provenance and licence.
    """
    resource = importlib.resources.files("keras_vae") / "assets" / EMBEDDED_FILE
    with importlib.resources.as_file(resource) as path, np.load(path) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _keras_dataset(module_name):
    def load_data():
        module = getattr(keras.datasets, module_name)
        try:
            return module.load_data()
        except Exception as error:  # no network, no cache, a broken cache...
            raise OSError(
                f"keras.datasets.{module_name}.load_data() failed ({error}). It downloads "
                "the data once into $KERAS_HOME/datasets (~/.keras/datasets); with no "
                "network, copy the files there, or use load('embedded') (a small MNIST "
                "subset shipped with keras_vae)."
            ) from error

    return load_data


names.DATASETS.add("mnist", _keras_dataset("mnist"),
                   description="MNIST through keras.datasets (60,000 + 10,000)")
names.DATASETS.add("fashion_mnist", _keras_dataset("fashion_mnist"),
                   description="Fashion-MNIST through keras.datasets (60,000 + 10,000)")


__all__ = ["EMBEDDED_FILE", "load_embedded"]
