r"""Data for VAEs: MNIST, Fashion-MNIST, the embedded MNIST subset, user arrays and images.

Every loader returns a `Dataset` of float32 images in [0, 1] with shape
[N, H, W, C] (MNIST: [N, 28, 28, 1]) and integer labels (or None).

Binarisation follows the protocol of Burda et al. (2016):

```none
dynamic   x_bin ~ Bernoulli(x), a fresh draw each time an image is used in training
          (`dynamic_binarization`, a seeded tf.data pipeline)
static    x_bin ~ Bernoulli(x), one fixed draw (`binarize`)
test set  binarised once, with the fixed seed TEST_BINARIZATION_SEED, under both
```

and the IWAE paper's split holds out the last 400 training images for
validation (`split="iwae"`).

Example:

```python
from keras_vae import data
ds = data.load("mnist", binarization="dynamic", split="iwae")
train = data.dynamic_binarization(ds.x_train, batch_size=20, seed=0)
model.fit(train, epochs=10, validation_data=(ds.x_valid,))
```

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  Y. LeCun, C. Cortes, C. Burges. The MNIST database of handwritten digits.
  H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST. arXiv:1708.07747, 2017.
"""

import dataclasses
import os
import pathlib

import numpy as np

from keras_vae import _data_files, names, noise
from keras_vae._backend import tf
from keras_vae._datasets import EMBEDDED_FILE, load_embedded
from keras_vae.validation import check_images, integer_likelihood, unit_interval_likelihood
from keras_vae.validation import check_unit_interval as _check_unit_interval

#: The seed of the one binarisation of every test (and validation) set.
TEST_BINARIZATION_SEED = 123

#: The IWAE paper's validation set: the last 400 training images.
IWAE_VALIDATION_SIZE = 400

BINARIZATIONS = (None, "none", "static", "dynamic")
SPLITS = ("full", "iwae")


#: The image files a folder given to `load` may hold (`_data_files` reads them).
IMAGE_SUFFIXES = _data_files.IMAGE_SUFFIXES


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images in [0, 1] (float32, [N, H, W, C]) with labels, split for training and testing.

    Attributes:
      x_train, y_train: training images and labels (labels may be None).
      x_test, y_test: test images and labels; for user data without a test part,
        `test_fraction` of the examples (may be zero: then shape [0, H, W, C]).
      name: 'mnist', 'fashion_mnist', 'embedded', or the path loaded.
      x_valid, y_valid: the validation images (`split='iwae'`), else None.
      protocol: how the data were made (binarisation, seeds, split, sizes); goes
        into evaluation reports as is.
    """

    x_train: np.ndarray
    y_train: object
    x_test: np.ndarray
    y_test: object
    name: str
    x_valid: object = None
    y_valid: object = None
    protocol: dict = dataclasses.field(default_factory=dict)

    @property
    def event_shape(self):
        """The shape of one example, e.g. (28, 28, 1)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        sizes = f"train={len(self.x_train)}, test={len(self.x_test)}"
        if self.x_valid is not None:
            sizes += f", valid={len(self.x_valid)}"
        return f"Dataset(name={self.name!r}, {sizes}, event_shape={self.event_shape})"


# --------------------------------------------------------------------------- binarisation


def binarize(x, seed=TEST_BINARIZATION_SEED):
    r"""Static binarisation: one fixed draw x_bin ~ Bernoulli(x), as float32 0/1.

    ```none
    x_bin[i] = 1  if u[i] < x[i],  u ~ Uniform(0, 1) from numpy's PCG64(seed)
    ```

    The same `x` and `seed` give the same draw on every machine (numpy's
    generator, not TensorFlow's). Used for the test set (with
    TEST_BINARIZATION_SEED) and for statically binarised training sets.

    Args:
      x: array of grey values in [0, 1].
      seed: int seed of the draw.

    Returns:
      float32 array of x's shape with values in {0, 1}.
    """
    x = np.asarray(x, dtype="float32")
    _check_unit_interval(x, "x")
    u = np.random.default_rng(int(seed)).random(x.shape, dtype="float32")
    return (u < x).astype("float32")


def dynamic_binarization(x, batch_size=100, seed=0, y=None, shuffle=True, repeat=False):
    r"""A tf.data pipeline that binarises each batch afresh: x_bin ~ Bernoulli(x) per use.

    Burda et al.'s dynamic binarisation: every time an image is drawn for a
    training step, a new Bernoulli sample is taken, so the model never sees the
    same binary image twice (a strong regulariser on MNIST). The pipeline is
    seeded: the same `seed` gives the same batches and draws, epoch after epoch,
    on every run; each epoch (each new iteration over the dataset) shuffles and
    draws differently.

    Args:
      x: float array [N, ...] of grey values in [0, 1].
      batch_size: examples per batch.
      seed: int seed of the shuffling and of the draws.
      y: optional labels [N]; the elements are then (x_bin, y).
      shuffle: reshuffle the examples every epoch.
      repeat: repeat forever (then pass `steps_per_epoch` to `fit`).

    Returns:
      A `tf.data.Dataset` of float32 batches in {0, 1} (or (batch, labels)),
      ready for `model.fit`.
    """
    x = np.asarray(x, dtype="float32")
    _check_unit_interval(x, "x")
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    seed = int(seed)
    elements = x if y is None else (x, np.asarray(y))
    ds = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size))
    # One int64 per batch from a seeded stream that changes every epoch; the
    # draw is a stateless function of it, so the pipeline is deterministic.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))

    def draw(batch, pair):
        binary = bernoulli_draw(batch if y is None else batch[0], pair)
        return binary if y is None else (binary, batch[1])

    ds = ds.map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def bernoulli_draw(images, seed):
    r"""One stateless Bernoulli draw of grey images: x_bin = 1 where u < x.

    ```none
    x_bin[i] = 1  if u[i] < x[i],  u = noise.uniform(shape(x), seed)
    ```

    Args:
      images: float32 tensor of grey values in [0, 1].
      seed: int64 tensor of shape [2], the stateless seed.

    Returns:
      float32 tensor of `images`' shape with values in {0, 1}.
    """
    u = noise.uniform(tf.shape(images), seed)  # TF's draw; ThreeFry's under XLA
    return tf.cast(u < images, "float32")


def training_stream(x, batch_size, seed, start_epoch, epochs, dynamic, labels=None):
    r"""The batches of epochs start_epoch..epochs-1 as one tf.data stream (resumable).

    Batch b of epoch e is a pure function of (seed, e, b), so a run resumed at
    epoch e sees exactly the batches an uninterrupted run would have seen:

    ```none
    order_e = stateless_shuffle(range(N), seed=(seed, e))      drop_remainder batches
    batch   = x[order_e[b * B:(b + 1) * B]]
    dynamic:  batch ~ Bernoulli(batch), stateless seed (seed + 1, e * steps + b)
    ```

    Args:
      x: float array [N, ...] (in [0, 1] when `dynamic`).
      batch_size: examples per batch B (the last partial batch of an epoch is dropped).
      seed: int seed of the order and of the draws (taken modulo 2^31 - 1).
      start_epoch: the first epoch of the stream (0 for a new run).
      epochs: one past the last epoch.
      dynamic: binarise each batch afresh (Burda et al.'s dynamic binarisation).
      labels: one label per example (a conditional model), or None: the batches are (x, y).

    Returns:
      (dataset, steps): a `tf.data.Dataset` of float32 batches, sharded by data
      under a distribution strategy, and the steps per epoch (N // B).

    Raises:
      ValueError: `batch_size` is not positive or larger than N, or `dynamic`
        with values outside [0, 1].
    """
    x = np.asarray(x, dtype="float32")
    if dynamic:
        _check_unit_interval(x, "x")
    if not 0 < int(batch_size) <= len(x):
        raise ValueError(
            f"batch_size must lie in [1, {len(x)}] (the examples), got {batch_size!r}."
        )
    n, batch_size = len(x), int(batch_size)
    steps, tagged = n // batch_size, None if labels is None else tf.constant(np.asarray(labels))
    images = tf.constant(x)
    seed = int(seed) % (2**31 - 1)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype="int64"), seed=tf.stack([tf.constant(seed, "int64"), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

        def make_batch(index, step):
            batch = tf.gather(images, index)
            if dynamic:
                batch = bernoulli_draw(batch, tf.stack([tf.constant(seed + 1, "int64"),
                                                        epoch * steps + step]))
            return batch if tagged is None else (batch, tf.gather(tagged, index))

        return tf.data.Dataset.zip((batches, tf.data.Dataset.range(steps))).map(make_batch)

    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality((epochs - start_epoch) * steps))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(4), steps


# --------------------------------------------------------------------------- loading


def load(name_or_path, binarization=None, seed=0, split="full", likelihood="bernoulli",
         event_shape=None, test_fraction=0.0):
    r"""Loads a data set by name or from a file or folder, as a `Dataset` in [0, 1].

    Names (`names.DATASETS`): 'embedded' (3,000 + 1,000 MNIST digits shipped in the
    package: no network, no cache), 'mnist', 'fashion_mnist' (through
    `keras.datasets`, which downloads once into $KERAS_HOME/datasets).

    Paths: a `.npy` array [N, H, W] or [N, H, W, C] (no labels); a `.npz` with
    `x_train` (and `x_test`, `y_train`, `y_test`), or `x` (and `y`), or one array;
    a folder of images (greyscale unless in colour; images in sub-folders get the
    sub-folder's index among the sorted names as their label). Integer arrays
    holding values above 1 are 0-255 pixels and divided by 255; float arrays must
    be scaled already (`validation.check_images`).

    Args:
      name_or_path: one of NAMES, or a str / pathlib.Path.
      binarization: None or 'none' (grey values; 8-bit integers 0..255 for an
        `integer_valued` likelihood such as 'discretized_logistic'), 'static'
        (training images binarised once with `seed`) or 'dynamic' (training images left grey, for
        `dynamic_binarization`). With either, the test and validation images are
        binarised once with TEST_BINARIZATION_SEED.
      seed: int seed of the static binarisation.
      split: 'full' (all training images) or 'iwae' (the last 400 training
        images become `x_valid`).
      likelihood: the likelihood the data are for; its `support` bounds the
        values ([0, 1] for 'bernoulli', any finite value for 'gaussian').
      event_shape: the expected shape of one example, e.g. (28, 28, 1); None
        accepts any. [N, H, W] data get a channel axis first.
      test_fraction: for user data with no test part, the fraction of examples
        (the last ones) kept as the test set.

    Returns:
      A `Dataset`.

    Raises:
      FileNotFoundError: a path that does not exist.
      ValueError: bad options, or a corrupt file, wrong dtype or shape, NaN/Inf,
        values outside the likelihood's support or integers outside [0, 255].
    """
    _check_options(binarization, split, test_fraction, likelihood)
    binarization = None if binarization == "none" else binarization
    name, (x_train, y_train), (x_test, y_test) = _read(name_or_path, likelihood, test_fraction)
    if event_shape is not None and tuple(x_train.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name}: examples have shape {tuple(x_train.shape[1:])}, but "
            f"event_shape={tuple(event_shape)} was asked for."
        )
    (x_train, y_train), (x_valid, y_valid) = _hold_out(x_train, y_train, split, name)
    if binarization is not None:
        x_test = binarize(x_test, TEST_BINARIZATION_SEED)
        if x_valid is not None:
            x_valid = binarize(x_valid, TEST_BINARIZATION_SEED + 1)
        if binarization == "static":
            x_train = binarize(x_train, seed)
    sizes = {"num_train": int(len(x_train)), "num_valid": 0 if x_valid is None else
             int(len(x_valid)), "num_test": int(len(x_test))}
    protocol = _protocol(name, binarization, seed, split, x_valid is not None, sizes,
                         list(x_train.shape[1:]))
    return Dataset(x_train, y_train, x_test, y_test, name, x_valid, y_valid, protocol)


def _check_options(binarization, split, test_fraction, likelihood):
    if binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}, got {binarization!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}.")
    if binarization is not None and not unit_interval_likelihood(likelihood):
        raise ValueError(
            f"binarization={binarization!r} makes 0/1 data, which needs a Bernoulli "
            f"likelihood, not {likelihood!r}."
        )


def _read(name_or_path, likelihood, test_fraction):
    """(name, (x_train, y_train), (x_test, y_test)) of a registered name or a path."""
    if name_or_path in names.DATASETS:
        name = names.DATASETS.canonical(name_or_path)
        (x_train, y_train), (x_test, y_test) = names.DATASETS.get(name)()
        return name, (_scale_images(x_train, likelihood), y_train), (
            _scale_images(x_test, likelihood), y_test)
    if isinstance(name_or_path, (str, os.PathLike)):
        path = pathlib.Path(name_or_path).expanduser()
        x_train, y_train, x_test, y_test = _data_files.load_user_data(
            path, likelihood, test_fraction)
        return str(path), (x_train, y_train), (x_test, y_test)
    raise TypeError(
        f"load() takes a name ({', '.join(names.DATASETS.names())}) or a path, "
        f"got {type(name_or_path)}."
    )


def _hold_out(x_train, y_train, split, name):
    """((x_train, y_train), (x_valid, y_valid)): split='iwae' keeps the last 400 apart."""
    if split != "iwae":
        return (x_train, y_train), (None, None)
    if len(x_train) <= IWAE_VALIDATION_SIZE:
        raise ValueError(
            f"split='iwae' holds out the last {IWAE_VALIDATION_SIZE} training images, "
            f"but {name} has only {len(x_train)}."
        )
    cut = len(x_train) - IWAE_VALIDATION_SIZE
    y_parts = (None, None) if y_train is None else (y_train[:cut], y_train[cut:])
    return (x_train[:cut], y_parts[0]), (x_train[cut:], y_parts[1])


def _protocol(name, binarization, seed, split, has_valid, sizes, event_shape):
    """How the data were made: goes into evaluation reports as is."""
    return {
        "data": name,
        "binarization": binarization,
        "train_binarization_seed": seed if binarization == "static" else None,
        "dynamic_binarization_seed": "set by dynamic_binarization(seed=...)"
        if binarization == "dynamic" else None,
        "test_binarization_seed": TEST_BINARIZATION_SEED if binarization else None,
        "validation_binarization_seed": TEST_BINARIZATION_SEED + 1
        if binarization and has_valid else None,
        "split": split,
        **sizes,
        "event_shape": event_shape,
    }


#: Names `load` accepts besides a path (`names.DATASETS` holds them; this is a snapshot).
NAMES = names.DATASETS.names()


def _scale_images(x, likelihood="bernoulli"):
    """uint8 [N, H, W] -> float32 [N, H, W, 1] in [0, 1] (0..255 kept for an 8-bit likelihood)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if integer_likelihood(likelihood):
        return x.astype("float32")
    return (x.astype("float32") / 255.0).astype("float32")


__all__ = [
    "Dataset", "load", "load_embedded", "binarize", "dynamic_binarization", "bernoulli_draw",
    "training_stream", "check_images",
    "NAMES", "unit_interval_likelihood", "TEST_BINARIZATION_SEED", "IWAE_VALIDATION_SIZE",
]
