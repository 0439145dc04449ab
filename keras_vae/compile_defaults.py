r"""`VAE.compile`'s defaults, chosen by measurement: steps per execution and XLA.

```none
steps_per_execution   DEFAULT_STEPS_PER_EXECUTION (100); 1 under a strategy over several
                      devices or workers
jit_compile           True where Keras can use XLA (default_jit_compile: on a CPU too,
                      whatever its threads); else Keras's 'auto'
```

Both are only defaults: `model.compile(steps_per_execution=..., jit_compile=...)`
overrides them, and a saved model's compile config restores what it was compiled
with (`compile_from_config`). bench/ part train holds the measurements.

Example:

```python
model = keras_vae.VAE(latent_dim=16)
model.compile(optimizer="adam")       # steps_per_execution=100, jit_compile=True
```
"""

import os

from keras_vae._backend import keras, tf


#: `VAE.compile`'s default `steps_per_execution`, chosen by measurement (bench/ part train and
#: its sweep; seed MLP 784-200-10, batch 128, `fit` on an array, CPU ms per step on 1 core,
#: back to back): 1 step 7.7 (tf.data), 50 steps 5.5 (tf.data) / 5.0 (in-step batches),
#: 100: 4.2, 200: 4.2, 400: 3.9 (ideal 3.7); IWAE net k=5, batch 20: 8.6 / 6.3 / 5.7, 200: 5.4.
#: Exact at any value: the non-finite guard is in the step (`apply_if_finite`'s halt) and
#: in-step batches end each epoch's executions at the epoch (`keras_vae.batches`); 100 keeps
#: callbacks (Ctrl-C, time limits, the progress bar) within about a second on small nets.
DEFAULT_STEPS_PER_EXECUTION = 100


def compile_defaults(args, kwargs, model=None):
    """`keras.Model.compile`'s keyword arguments with keras_vae's measured defaults filled in.

    `steps_per_execution` (the 7th positional argument of `compile`) defaults to
    `DEFAULT_STEPS_PER_EXECUTION`, or 1 under a strategy over several devices or workers;
    `jit_compile` (the 8th) to `default_jit_compile(model, run_eagerly)`: XLA on a CPU
    too, where Keras's 'auto' would turn it off.

    Args:
      args: the positional arguments given to `compile`.
      kwargs: the keyword arguments given to `compile`.
      model: the model being compiled (None: `jit_compile` is left to Keras).

    Returns:
      A new dict of keyword arguments.
    """
    kwargs = dict(kwargs)
    if len(args) < 7:
        # Keras 3.15's multi-step loop fails on a distributed iterator (Mirrored and
        # MultiWorkerMirrored: InvalidArgumentError in while/cond): one step per call there.
        kwargs.setdefault("steps_per_execution", 1 if distributed() else
                          DEFAULT_STEPS_PER_EXECUTION)
    if len(args) < 8 and model is not None:
        run_eagerly = args[5] if len(args) > 5 else kwargs.get("run_eagerly", False)
        kwargs.setdefault("jit_compile", default_jit_compile(model, run_eagerly))
    return kwargs


def default_jit_compile(model, run_eagerly=False):
    """keras_vae's `jit_compile` default: True (XLA) wherever Keras can use it, else 'auto'.

    Keras's 'auto' turns XLA off on a machine without an accelerator. On a CPU, XLA
    fuses the elementwise work around small matmuls, and `fit` on in-step batches
    runs each execution as one XLA loop (`keras_vae.fused_steps`). Measured with plain
    `model.fit` on arrays, 4 interleaved rounds, ms of CPU per step (graph mode / XLA
    with Keras's loop / XLA fused), pinned to one core with one thread: seed MLP
    (batch 128) 3.92 / 3.32 / 2.65, IWAE net (batch 20) k = 1: 2.84 / 1.99 / 1.32,
    k = 5: 4.18 / 3.09 / 2.37; on 2 threads XLA fused ran 1.2-1.6x faster than XLA
    with Keras's loop (README, "The API in a few lines"). So XLA is on whatever the
    CPU threads. (Before the fused loop and the guard's masked writes, XLA lost on one
    thread: the IWAE net at k = 1 spent 5.4-6.9 ms against 3.4-4.2 in graph mode.)
    'auto' is kept where Keras would not use XLA anyway: an eager run, a strategy over
    several devices or workers, op determinism, or a layer that says
    `supports_jit = False`.
    """
    from tensorflow.python.framework import config as tf_config  # noqa: PLC0415 (Keras's check)

    if run_eagerly or distributed() or tf_config.is_op_determinism_enabled():
        return "auto"
    if not all(layer.supports_jit for layer in model._flatten_layers()):
        return "auto"
    return True


def cpu_threads():
    """The threads TF's CPU kernels run on: its intra-op pool, as TF sizes it.

    Public since the XLA default depended on it; it no longer does (`default_jit_compile`).

    `tf.config.threading.set_intra_op_parallelism_threads`, else the
    `TF_NUM_INTRAOP_THREADS` environment variable, else the cores this process may run
    on (its CPU affinity, e.g. under `taskset`); never more than those cores.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS, Windows)
        cores = os.cpu_count() or 1
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if not configured:
        try:
            configured = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0)
        except ValueError:
            configured = 0
    return min(configured, cores) if configured > 0 else cores


def distributed(strategy=None):
    """Whether `strategy` (default: the current one) spreads over devices or workers."""
    strategy = strategy or tf.distribute.get_strategy()
    return tf.distribute.has_strategy() and not isinstance(
        strategy, tf.distribute.OneDeviceStrategy)


def compile_with_defaults(model, *args, **kwargs):
    """`VAE.compile`: `keras.Model.compile` with `compile_defaults` filled in."""
    return keras.Model.compile(model, *args, **compile_defaults(args, kwargs, model))


def compile_from_config(model, config):
    """`VAE.compile_from_config`: Keras's, which skips a model whose `compile` is overridden.

    The saved compile config records `steps_per_execution` and `jit_compile`, so
    a loaded model is compiled exactly as it was saved.
    """
    model.compile(**keras.saving.deserialize_keras_object(config))
    if getattr(model, "optimizer", None) is not None and model.built:
        model.optimizer.build(model.trainable_variables)


__all__ = ["DEFAULT_STEPS_PER_EXECUTION", "compile_defaults", "default_jit_compile",
           "cpu_threads", "distributed", "compile_with_defaults", "compile_from_config"]
