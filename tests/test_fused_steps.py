"""keras_vae.fused_steps: an execution of in-step batches as one XLA loop, and Keras's own loop.

The fused executions must train exactly as Keras's loop of one compiled step per
batch (`model.fuse_steps = False`): the same optimizer steps, logs at every
execution's end, history and weights, with a short last batch, executions that
do not divide the epoch, dynamic binarisation, IWAE, a resumed epoch count and a
callback that stops training. Where a fit cannot run fused (no XLA, one step per
execution, steps_per_epoch, another train_step), Keras's loop runs.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import batches, fused_steps
from keras_vae._backend import keras


class Logs(keras.callbacks.Callback):
    """Records (end step, loss) at every execution's end."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, float(logs["loss"])))


class CountingKeras:
    """Counts the calls that reach Keras's train function (the unfused path)."""

    def __init__(self, model):
        self.calls = 0
        keras_function = model.train_function.keras_function

        def counted(iterator):
            self.calls += 1
            return keras_function(iterator)

        self.function = fused_steps.wrap(model, counted)
        model.train_function = self.function


def _model(fuse=True, objective="elbo", spe=3, jit=True, cls=keras_vae.VAE):
    keras.utils.set_random_seed(0)
    model = cls(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), objective=objective,
                seed=0)
    model.fuse_steps = fuse
    model.compile(optimizer="adam", steps_per_execution=spe, jit_compile=jit)
    return model


def _data(n=42, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 1)).astype("float32")  # grey: dynamic binarisation


def _fit(model, source, **kwargs):
    logs = Logs()
    history = model.fit(source, verbose=0, callbacks=[logs], **kwargs).history
    return history, logs.seen, [w.numpy() for w in model.weights]


def _assert_same_training(a, b, model_a, model_b):
    (history_a, seen_a, weights_a), (history_b, seen_b, weights_b) = a, b
    assert int(model_a.optimizer.iterations) == int(model_b.optimizer.iterations)
    assert [s for s, _ in seen_a] == [s for s, _ in seen_b]
    np.testing.assert_allclose([v for _, v in seen_a], [v for _, v in seen_b], rtol=1e-5)
    assert history_a.keys() == history_b.keys()
    for key in history_a:
        np.testing.assert_allclose(history_a[key], history_b[key], rtol=1e-5, err_msg=key)
    for u, v in zip(weights_a, weights_b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective,dynamic,batch_size,spe", [
    ("elbo", True, 8, 3),     # 42 rows: 5 batches of 8 + a short one; executions of 3, 3
    ("iwae", False, 8, 4),    # executions of 4 and 2
    ("elbo", True, 7, 2),     # 42 = 6 x 7: no short batch; executions of 2
    ("elbo", False, 8, 50),   # one execution longer than the epoch
])
def test_fused_executions_train_as_keras_loop(objective, dynamic, batch_size, spe):
    x = _data()
    runs = {}
    for fuse in (True, False):
        model = _model(fuse, objective, spe)
        source = batches.Batches(x, batch_size=batch_size, seed=3, dynamic=dynamic)
        runs[fuse] = model, _fit(model, source, epochs=3)
    (fused_model, fused), (keras_model, unfused) = runs[True], runs[False]
    steps = -(-42 // batch_size)
    assert int(fused_model.optimizer.iterations) == 3 * steps
    _assert_same_training(fused, unfused, fused_model, keras_model)


def test_fused_path_runs_without_keras_loop_on_arrays():
    x = _data()
    model = _model(spe=4)
    model.fit(x, batch_size=8, epochs=1, verbose=0)  # builds the train function
    counter = CountingKeras(model)
    history, seen, _ = _fit(model, x, batch_size=8, epochs=2)
    assert counter.calls == 0  # every execution ran fused
    assert [s for s, _ in seen] == [3, 7, 3, 7]  # Keras's step numbers: executions of 4
    assert int(model.optimizer.iterations) == 3 * 6
    assert np.all(np.isfinite(history["loss"]))


def test_resumed_epochs_and_a_stopping_callback_match_keras_loop():
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 5:
                self.model.stop_training = True

    x = _data()
    runs = {}
    for fuse in (True, False):
        model = _model(fuse, spe=3)
        source = batches.Batches(x, batch_size=8, seed=0, dynamic=True)
        first = _fit(model, source, epochs=3, initial_epoch=1)
        logs = Logs()
        model.fit(source, epochs=2, verbose=0, callbacks=[StopAt(), logs])
        runs[fuse] = model, first, logs.seen, [w.numpy() for w in model.weights]
    (fm, ffirst, fseen, fw), (km, kfirst, kseen, kw) = runs[True], runs[False]
    _assert_same_training(ffirst, kfirst, fm, km)
    assert [s for s, _ in fseen] == [s for s, _ in kseen] == [2, 5]
    np.testing.assert_allclose([v for _, v in fseen], [v for _, v in kseen], rtol=1e-5)
    assert int(fm.optimizer.iterations) == 2 * 6 + 6
    for u, v in zip(fw, kw):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


class OwnStep(keras_vae.VAE):
    def train_step(self, data):
        return super().train_step(data)


@pytest.mark.parametrize("change,expected", [
    ({}, True),
    ({"fuse": False}, False),
    ({"jit": False}, False),
    ({"spe": 1}, False),
    ({"cls": OwnStep}, False),
])
def test_which_fits_run_fused(change, expected):
    model = _model(**change)
    source = batches.Batches(_data(), batch_size=8)
    assert (fused_steps.source_for_fit(model, source, {}) is source) is expected
    assert fused_steps.source_for_fit(model, None, {}) is None
    assert fused_steps.source_for_fit(model, source, {"steps_per_epoch": 2}) is None


def test_steps_per_epoch_and_tf_data_take_keras_loop():
    x = _data()
    model = _model(spe=2)
    source = batches.Batches(x, batch_size=8, seed=0)
    model.fit(source, epochs=1, steps_per_epoch=4, verbose=0)  # builds the train function
    counter = CountingKeras(model)
    model.fit(source, epochs=1, steps_per_epoch=4, verbose=0)
    assert counter.calls == 2 and model._fused_source is None
    model.fit(source, epochs=1, verbose=0)  # the whole epoch: fused
    assert counter.calls == 2
    model.fit(x, batch_size=8, epochs=1, verbose=0)  # a new source: a new train function
    assert model.train_function is not counter.function
    assert int(model.optimizer.iterations) == 4 + 4 + 6 + 6


def test_a_conditional_model_trains_fused_as_keras_loop():
    x = _data()
    y = np.arange(42) % 3
    runs = {}
    for fuse in (True, False):
        keras.utils.set_random_seed(0)
        model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1),
                              num_classes=3, seed=0)
        model.fuse_steps = fuse
        model.compile(optimizer="adam", steps_per_execution=4, jit_compile=True)
        source = batches.Batches(x, batch_size=8, seed=0, y=y, dynamic=True)
        runs[fuse] = model, _fit(model, source, epochs=2)
    (fused_model, fused), (keras_model, unfused) = runs[True], runs[False]
    assert int(fused_model.optimizer.iterations) == 2 * 6
    _assert_same_training(fused, unfused, fused_model, keras_model)
