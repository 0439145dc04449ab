r"""Training batches gathered (and binarised) inside the compiled step instead of a tf.data map.

```none
held     X [N, ...] as one tensor (labels Y [N] too, if any)
epoch e  order_e = stateless_shuffle(range(N), seed=(seed, e))    (range(N) if shuffle=False)
step b   rows    = order_e[b*B : min((b+1)*B, N)]                 (drop_remainder: N // B steps)
         batch   = X[rows]       dynamic: batch ~ Bernoulli(X[rows]), data.bernoulli_draw(
                                          X[rows], seed=(seed + 1, e * steps + b))
```

tf.data only yields the positions b*B .. of each step (a few int64 per step); the
step itself gathers its rows from `order_e` (a variable set as epoch e begins) and
draws its Bernoulli variates from a stateless seed, so every batch is a pure
function of (seed, epoch, step): a run resumed at epoch e sees exactly the
batches of an uninterrupted one, whatever `steps_per_execution` is, and each
epoch is one finite pass, so an execution never runs into the next epoch. The
batches are those of `data.training_stream` (same order, the same
`data.bernoulli_draw` with the same seeds: the same draws outside XLA; under XLA
its `noise.uniform` takes ThreeFry, ~3x cheaper there than TF's choice).

`VAE.fit` takes a `Batches` as `x`; it also makes one by itself for plain array
data (`from_fit_arguments`): `model.fit(x, batch_size=128)` gathers in-step,
with Keras's batching (the last batch of an epoch may be short).

Example:

```python
from keras_vae import batches
train = batches.Batches(x_grey, batch_size=20, seed=0, dynamic=True)  # Burda et al.
model.fit(train, epochs=10, validation_data=(x_valid,))
```

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import numpy as np

from keras_vae import data
from keras_vae._backend import keras, tf
from keras_vae.validation import check_unit_interval

#: The key of the elements of `Batches.dataset`: the positions in the epoch's order.
POSITIONS = "keras_vae_positions"


class Batches:
    """A training set held as one tensor whose batches the compiled step gathers itself.

    Args:
      x: float array [N, ...] (in [0, 1] when `dynamic`).
      batch_size: examples per step B.
      seed: int seed of the order and of the Bernoulli draws (taken modulo 2^31 - 1).
      y: optional labels [N] (a conditional model): the batches are then (x, y).
      shuffle: a new order every epoch (else the order of `x`).
      dynamic: binarise every batch afresh, x_bin ~ Bernoulli(x) (Burda et al., 2016).
      drop_remainder: N // B steps per epoch (else ceil(N / B), the last one short).

    Raises:
      ValueError: a batch size outside [1, N], labels of another length, or
        `dynamic` with values outside [0, 1].
    """

    def __init__(self, x, batch_size=32, seed=0, y=None, shuffle=True, dynamic=False,
                 drop_remainder=False):
        self.x = np.asarray(x, dtype="float32")
        n = len(self.x)
        if not 0 < int(batch_size) <= n:
            raise ValueError(f"batch_size must lie in [1, {n}] (the examples), got "
                             f"{batch_size!r}.")
        if y is not None and len(y) != n:
            raise ValueError(f"y has {len(y)} labels for {n} examples.")
        if dynamic:
            check_unit_interval(self.x, "x")
        self.y = None if y is None else np.asarray(y)
        self.batch_size, self.seed = int(batch_size), int(seed) % (2**31 - 1)
        self.shuffle, self.dynamic, self.drop_remainder = bool(shuffle), bool(dynamic), \
            bool(drop_remainder)
        self.steps = n // self.batch_size if drop_remainder else -(-n // self.batch_size)
        self.full_steps = n // self.batch_size  # the steps of B rows (the last may be short)
        self.step_in_epoch = 0  # the epoch's next step where executions run fused (fused_steps)
        self._held = self._dataset = None

    def bind(self, strategy=None):
        """Creates the tensors and variables the step reads (once), under `strategy`'s scope."""
        if self._held is None:
            with (strategy or tf.distribute.get_strategy()).scope():
                self._held = {
                    "x": tf.constant(self.x),
                    "y": None if self.y is None else tf.constant(self.y),
                    "order": tf.Variable(tf.range(len(self.x), dtype="int64"),
                                         trainable=False, name="batch_order"),
                    "epoch": tf.Variable(tf.constant(0, "int64"), trainable=False,
                                         name="batch_epoch")}
        return self

    def set_epoch(self, epoch):
        """Sets the order (and the draws' seeds) of epoch `epoch` (0-based)."""
        held = self.bind()._held
        held["epoch"].assign(int(epoch))
        self.step_in_epoch = 0
        if self.shuffle:
            held["order"].assign(epoch_order(len(self.x), self.seed, epoch))

    def dataset(self):
        """One epoch of elements {POSITIONS: int64 [b]}, b = B (the last one maybe shorter)."""
        if getattr(self, "_dataset", None) is None:
            positions = tf.data.Dataset.range(len(self.x)).batch(
                self.batch_size, drop_remainder=self.drop_remainder)
            self._dataset = positions.map(lambda p: {POSITIONS: p}).prefetch(2)
        return self._dataset

    def batch(self, positions):
        """In the step: the batch x (or (x, y)) at `positions` of the current epoch's order."""
        held = self._held
        rows = tf.gather(held["order"], positions)
        x = tf.gather(held["x"], rows)
        if self.dynamic:
            step = held["epoch"] * self.steps + positions[0] // self.batch_size
            seed = tf.stack([tf.constant(self.seed + 1, "int64"), step])
            x = data.bernoulli_draw(x, seed)
        return x if held["y"] is None else (x, tf.gather(held["y"], rows))


def epoch_order(n, seed, epoch):
    """stateless_shuffle(range(n), seed=(seed, epoch)): epoch `epoch`'s order (int64 [n])."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype="int64"), seed=tf.constant([int(seed), int(epoch)], "int64"))


def resolve(model, data):
    """`train_step`'s data: an element of `Batches.dataset` becomes the batch it names."""
    if isinstance(data, dict) and POSITIONS in data:
        return model._in_step_batches.batch(data[POSITIONS])
    return data


class EpochOrder(keras.callbacks.Callback):
    """Sets the `Batches`' order as each epoch begins (added by `fit`)."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def on_epoch_begin(self, epoch, logs=None):
        self.source.set_epoch(epoch)


#: `fit` arguments under which array data stay with Keras's own pipeline.
_KERAS_ONLY = ("sample_weight", "class_weight", "validation_split", "steps_per_epoch")


def from_fit_arguments(model, x, y, kwargs):
    """The `Batches` of `model.fit(x, y, **kwargs)` for array data, else None (Keras's way).

    Array x (and y: labels of a conditional model) on one device, without sample
    or class weights, validation_split or steps_per_epoch, become a `Batches`
    with fit's batch_size (32) and shuffle (True), seeded by the model's seed.
    The same arrays give the same `Batches` object again (no retracing).
    """
    if not isinstance(x, np.ndarray) or any(kwargs.get(k) for k in _KERAS_ONLY):
        return None
    if (y is not None and not isinstance(y, np.ndarray)) or tf.distribute.has_strategy() \
            or model.distribute_strategy is not tf.distribute.get_strategy():
        return None
    batch_size, shuffle = kwargs.get("batch_size") or 32, kwargs.get("shuffle", True)
    if shuffle not in (True, False) or len(x) == 0:
        return None
    key = (id(x), id(y), x.shape, min(int(batch_size), len(x)), bool(shuffle))
    cached = getattr(model, "_in_step_batches", None)
    if cached is not None and getattr(cached, "key", None) == key:
        return cached
    seed = model.seed if model.seed is not None else int(np.random.randint(2**31 - 1))
    source = Batches(x, key[3], seed, y=y if model.is_conditional else None, shuffle=shuffle)
    source.key = key
    return source


def fit_arguments(model, source, callbacks, kwargs):
    """(x, callbacks, kwargs) for keras.Model.fit on `source`; the step will read from it.

    A new source makes Keras trace the step again (it reads the source's tensors).
    """
    if getattr(model, "_in_step_batches", None) is not source:
        model._in_step_batches = source.bind(model.distribute_strategy)
        model.train_function = None
    kwargs = {k: v for k, v in kwargs.items() if k not in ("batch_size", "shuffle")}
    kwargs["shuffle"] = False  # (the order is the source's)
    return source.dataset(), [EpochOrder(source)] + list(callbacks), kwargs


__all__ = ["POSITIONS", "Batches", "epoch_order", "resolve", "EpochOrder",
           "from_fit_arguments", "fit_arguments"]
