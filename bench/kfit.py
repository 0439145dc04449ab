"""Feeding and timing keras_vae training the way a user would: `model.fit` on arrays or tf.data.

`fit_array_steps` is the library's default path (plain `model.fit(x, batch_size=B)`: the
batches are gathered inside the compiled step, `keras_vae.batches`); `index_dataset` +
`fit_steps` feed a tf.data pipeline (the other parts' way, and the old default).
"""

import time

from keras_vae._backend import keras, tf


_TABLES = {}


def index_dataset(x, batch_size, dynamic=False, seed=0):
    """Shuffled batches of x (shuffled indices, gathered from one in-graph copy of x), repeated.

    dynamic=True binarises each batch afresh (a Bernoulli draw per pixel with p = x:
    the dynamic binarisation of Burda et al.); otherwise x is used as given.
    The PyTorch reference does the same: randperm, index, optional bernoulli.
    """
    n = int(x.shape[0])
    if id(x) not in _TABLES:  # one in-graph copy of x however many pipelines read it
        _TABLES[id(x)] = (x, tf.constant(x))
    table = _TABLES[id(x)][1]
    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    if dynamic:
        def gather(i):
            p = tf.gather(table, i)
            return tf.cast(tf.random.uniform(tf.shape(p)) < p, tf.float32)
    else:
        def gather(i):
            return tf.gather(table, i)
    return ds.map(gather, num_parallel_calls=1).repeat().prefetch(2)


def compile_model(model, lr=1e-3, jit_compile=True, steps_per_execution=1, epsilon=1e-7):
    """model.compile with Adam; jit_compile / steps_per_execution None: the library's defaults."""
    settings = {k: v for k, v in (("jit_compile", jit_compile),
                                  ("steps_per_execution", steps_per_execution)) if v is not None}
    model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=epsilon), **settings)
    return model


LAST_CPU_SECONDS = [0.0]


def fit_steps(model, ds, steps):
    """Runs `steps` optimizer steps through model.fit; returns the wall seconds of the call.

    `steps` should be a multiple of the model's steps_per_execution: Keras runs whole
    executions on an endless dataset. The process CPU time of the call (all threads)
    is left in LAST_CPU_SECONDS[0].
    """
    cpu = time.process_time()
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    wall = time.perf_counter() - start
    LAST_CPU_SECONDS[0] = time.process_time() - cpu
    return wall


def array_part(x, batch_size, steps):
    """The first steps * batch_size rows of x: one epoch of `steps` steps (keep the object:
    the same array gives the same in-step batches, and so no new trace, on every call)."""
    return x[: steps * batch_size]


class EpochClock:
    """A Keras callback: wall and CPU seconds of each epoch (on_epoch_begin to on_epoch_end)."""

    def __new__(cls):
        class _Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                self.wall = time.perf_counter() - self.start[0]
                self.cpu = time.process_time() - self.start[1]

        return _Clock()


#: fit_array_steps's last call: the whole call's wall seconds (fit's one-off setup included).
LAST_CALL_SECONDS = [0.0]


def fit_array_steps(model, part, batch_size):
    """model.fit(part, batch_size=...): one epoch of the library's default (in-step) path.

    Returns the wall seconds of the epoch (from its start to its end, the per-epoch
    work included, `fit`'s one-off setup of the call not: a training run pays that
    once, not once per epoch); its CPU seconds go to LAST_CPU_SECONDS[0], the whole
    call's wall seconds to LAST_CALL_SECONDS[0].
    """
    clock = EpochClock()
    start = time.perf_counter()
    model.fit(part, batch_size=batch_size, epochs=1, verbose=0, callbacks=[clock])
    LAST_CALL_SECONDS[0] = time.perf_counter() - start
    LAST_CPU_SECONDS[0] = clock.cpu
    return clock.wall
