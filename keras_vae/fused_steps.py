r"""An execution of in-step batches as one compiled loop: `steps_per_execution` steps, one XLA call.

Keras runs an execution of S = `steps_per_execution` steps as a graph-mode
`tf.while_loop` that takes each step's data from the iterator and calls the
XLA-compiled step once per step. Each of those calls passes every variable in
and out of XLA, which on a 2-core CPU cost more than the step's own arithmetic
for the benchmark's nets (bench/ part train). With batches gathered in-step
(`keras_vae.batches`), a step's data are a pure function of its index in the
epoch, so the whole execution can be one XLA computation:

```none
execution e of an epoch of n steps (Keras: steps e*S .. min(e*S + S, n) - 1)
  b0     = the epoch's next step (`Batches.step_in_epoch`, set to 0 as the epoch begins)
  count  = min(S, n - b0)
  XLA:   for i in 0 .. count-1:  train_step({POSITIONS: (b0 + i) * B + range(B)})
  logs   = the trackers' results after the last step (what that step returns)
```

The element of `Batches.dataset` that step b would have read holds exactly
those positions, so the steps, their draws (the model's seed generator, the
Bernoulli draws' stateless seeds) and their updates are the ones of Keras's
loop. A short last batch (N not a multiple of B) runs as a loop of one step of
its own size. The iterator Keras hands over is not read: its epoch has a known
number of steps, and Keras stops by that count.

`VAE.fit` turns it on (`source_for_fit`) where all of these hold, else Keras's
loop runs as before: the data are a `keras_vae.batches.Batches` (arrays become
one), `jit_compile` is True, `steps_per_execution` > 1, the default strategy
(one device), no `steps_per_epoch`, the model's `train_step` is `VAE`'s, and
`model.fuse_steps` is True (set it False to compare).

Example:

```python
model.compile(optimizer="adam")        # XLA, 100 steps per execution (compile_defaults)
model.fit(x, batch_size=128)           # each execution: one XLA call of 100 steps
model.fuse_steps = False               # Keras's loop: one XLA call per step
```
"""

import contextlib

from keras_vae import batches
from keras_vae import training as training_lib
from keras_vae._backend import tf


class FusedStepsMixin:
    """`make_train_function` of a model whose executions may run fused (`VAE`'s base)."""

    #: Run the executions of an eligible fit as one compiled loop each (see the module).
    fuse_steps = True

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        self.train_function = wrap(self, self.train_function)
        return self.train_function


@contextlib.contextmanager
def fused_fit(model, source, fit_kwargs):
    """Within: `model`'s train function runs fused executions over `source` where allowed."""
    model._fused_source = source_for_fit(model, source, fit_kwargs)
    try:
        yield
    finally:
        model._fused_source = None


def source_for_fit(model, source, fit_kwargs):
    """`source` if this fit can run fused executions over it (see the module), else None."""
    from keras_vae.model import VAE  # noqa: PLC0415 (model imports this module)

    if source is None or not model.fuse_steps:
        return None
    if fit_kwargs.get("steps_per_epoch") is not None or model.run_eagerly:
        return None
    if model.jit_compile is not True or int(model.steps_per_execution) < 2:
        return None
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        return None
    if type(model).train_step is not VAE.train_step:
        return None
    return source


def wrap(model, keras_function):
    """The train function of `model`: fused executions while `fit` allows them, else Keras's.

    Args:
      model: a `keras_vae.VAE`; `model._fused_source` (set by `fit`) is the
        `Batches` whose executions run fused, or None.
      keras_function: the train function Keras made (`make_train_function`).

    Returns:
      A function iterator -> logs, as Keras's fit loop calls it.
    """
    run_steps = _compiled_steps(model)

    def function(iterator):
        source = getattr(model, "_fused_source", None)
        if source is None:
            return keras_function(iterator)
        first, steps = source.step_in_epoch, source.steps
        count = min(int(model.steps_per_execution), steps - first)
        if count <= 0:
            raise StopIteration  # (Keras's loop stops by the step count before this)
        full = min(count, source.full_steps - first)
        logs = None
        if full > 0:
            logs = run_steps(tf.constant(first, "int64"), tf.constant(full, "int64"),
                             source.batch_size, source.batch_size)
        if full < count:  # the epoch's short last batch
            logs = run_steps(tf.constant(first + full, "int64"), tf.constant(1, "int64"),
                             len(source.x) - source.full_steps * source.batch_size,
                             source.batch_size)
        source.step_in_epoch = first + count
        return logs

    function.keras_function = keras_function
    return function


def _compiled_steps(model):
    """tf.function(jit_compile) (first, count, size, batch_size) -> logs of steps first..+count-1.

    `size` (the rows of each of these steps) and `batch_size` are Python ints: a trace each.
    """

    @tf.function(jit_compile=True)
    def run_steps(first, count, size, batch_size):
        offsets = tf.range(size, dtype="int64")

        def body(i):
            step = first + i
            model.train_step({batches.POSITIONS: step * batch_size + offsets})
            return i + 1

        done = tf.while_loop(lambda i: i < count, body, [tf.constant(0, "int64")])
        with tf.control_dependencies([done]):  # each tracker's result, as the last step gave
            return training_lib.worker_logs({name: t.result() for name, t in
                                             model._trackers.items()}, model.distribute_strategy)

    return run_steps


__all__ = ["FusedStepsMixin", "fused_fit", "source_for_fit", "wrap"]
