"""Shared by test_serving.py, test_node.py and test_browser.py: the small VAE that the
session fixture `exported_vae` (conftest.py) trains and exports once, the old export
folder of tests/support/compat, and the checks for Node.js and onnxruntime.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SERVING = REPO / "serving"
NODE_DIR = SERVING / "node"
COMPAT = REPO / "tests" / "support" / "compat"
#: An export folder written by the code before the redesign (do not modify).
COMPAT_EXPORT = COMPAT / "export"
#: Its reference values: z and vae_decode_mean = the decoder's mean at z.
COMPAT_REFERENCE = COMPAT / "reference.npz"
LATENT_DIM = 4


def tiny_vae(x_train=None, epochs=3):
    """A small MLP VAE on 28x28x1 digits, trained briefly so samples look like something."""
    import keras

    import keras_vae

    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(64, activation="relu")], name="encoder")
    decoder = keras.Sequential([keras.Input((LATENT_DIM,)),
                                keras.layers.Dense(64, activation="relu"),
                                keras.layers.Dense(784, name="logits"),
                                keras.layers.Reshape((28, 28, 1))], name="decoder")
    model = keras_vae.VAE(latent_dim=LATENT_DIM, event_shape=(28, 28, 1), encoder=encoder,
                          decoder=decoder, seed=0)
    if x_train is not None:
        model.initialize_output_bias(x_train)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(x_train, epochs=epochs, batch_size=100, verbose=0)
    return model


def export_tiny_vae(out, mnist_binary=None):
    """Trains `tiny_vae` on 1,000 digits and exports it into `out` (name vae, version 1).

    Returns the manifest.
    """
    from keras_vae.export import export_all

    x_train = None if mnist_binary is None else mnist_binary[0][:1000]
    return export_all(tiny_vae(x_train), out, name="vae", version=1)


def require_tool(path_or_name, how):
    """The tool's path, or a test FAILURE (not a skip) saying how to install it."""
    import pytest

    found = shutil.which(path_or_name) or (
        path_or_name if os.path.isabs(path_or_name) and os.access(path_or_name, os.X_OK)
        else None)
    if not found:
        pytest.fail(f"{path_or_name} is not installed: {how} (tests/install.sh does this in CI)",
                    pytrace=False)
    return found


def require_node_modules():
    """serving/node/node_modules installed from the lockfile, or a FAILURE saying how."""
    import pytest

    require_tool("node", "install Node.js >= 18 (apt-get install -y nodejs npm)")
    missing = [p for p in ("onnxruntime-node", "onnxruntime-web")
               if not (NODE_DIR / "node_modules" / p / "package.json").is_file()]
    if missing:
        pytest.fail(f"{missing} not installed in {NODE_DIR}/node_modules: run "
                    f"`npm ci --prefix {NODE_DIR}` (tests/install.sh does this in CI)",
                    pytrace=False)
    return NODE_DIR


def run(cmd, timeout=120, **kwargs):
    """subprocess.run with captured text output and a timeout; returns the result."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def write_row_savedmodel(base, version=1, latent_dim=LATENT_DIM, delay_s=0.0):
    """A toy SavedModel with export contract 2's shapes (every input has a batch dimension).

    ``sample(seed int64 [N], temperature float32 [N])`` -> ``images`` [N, 28, 28, 1] and
    ``z`` [N, d], row i a pure function of (seed_i, temperature_i) (stateless normal
    draws); ``decode(z [N, d])`` -> ``mean`` = sigmoid of a fixed linear map. `delay_s`
    makes every decode call wait that long (a `tf.timestamp` loop), whatever its batch:
    a fixed cost per call, which merged requests share.

    Returns the numbered version folder.
    """
    import tensorflow as tf

    weights = tf.constant(np.random.default_rng(0).normal(size=(latent_dim, 784)) * 0.3,
                          tf.float32)

    def wait():
        if delay_s <= 0:
            return tf.constant(0.0, tf.float64)
        start = tf.timestamp()
        return tf.while_loop(lambda t: t - start < delay_s, lambda t: [tf.timestamp()],
                             [start])[0] - start

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, "z")])
        def decode(self, z):
            with tf.control_dependencies([wait()]):
                mean = tf.sigmoid(z @ weights)
            return {"mean": tf.reshape(mean, [-1, 28, 28, 1])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, "seed"),
                                      tf.TensorSpec([None], tf.float32, "temperature")])
        def sample(self, seed, temperature):
            rows = tf.map_fn(lambda s: tf.random.stateless_normal(
                [latent_dim], tf.stack([s, tf.zeros_like(s)])), seed, fn_output_signature=tf.float32)
            z = rows * temperature[:, None]
            return {"z": z, "images": self.decode(z)["mean"]}

    toy = Toy()
    path = pathlib.Path(base) / str(version)
    tf.saved_model.save(toy, str(path), signatures={
        "decode": toy.decode, "sample": toy.sample, "serving_default": toy.decode})
    return path


#: The classes of the conditional export fixture.
NUM_CLASSES = 10


def export_conditional_vae(out, mnist_binary):
    """A small class-conditional VAE (p(z|y) learned, one epoch on 500 labelled digits),
    exported into `out`; returns (model, manifest)."""
    import keras

    import keras_vae
    from keras_vae import networks
    from keras_vae.export import export_all

    event = (28, 28, 1)
    model = keras_vae.VAE(
        latent_dim=LATENT_DIM, event_shape=event, num_classes=NUM_CLASSES,
        conditional_prior=True, seed=0,
        encoder=networks.build_encoder("mlp", event, hidden_units=(32,)),
        decoder=networks.build_decoder("mlp", LATENT_DIM + NUM_CLASSES, event,
                                       hidden_units=(32,)))
    x, y = mnist_binary[0][:500], mnist_binary[1][:500]
    model.initialize_output_bias(x)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, y, epochs=1, batch_size=100, verbose=0)
    return model, export_all(model, out, name="cvae", version=1)


def conditional_reference(model, rows=10, seed=5):
    """(z [rows, d], labels [rows], the Keras decoder's mean at (z, labels)) as numpy."""
    import numpy as np

    z = np.random.default_rng(seed).standard_normal((rows, LATENT_DIM)).astype("float32")
    labels = (np.arange(rows) % NUM_CLASSES).astype("int64")
    mean = np.asarray(model.decoder_parameters(z, condition=model.condition_vector(labels))["mean"])
    return z, labels, mean
