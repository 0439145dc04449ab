"""runs' early stopping: a resumed run stops where, and with the weights, an uninterrupted one does.

Keras's EarlyStopping is the reference: fed every epoch's val_loss in one fit, it stops
at some epoch with some best epoch. `ResumableEarlyStopping` started from the history of
the first epochs (as `keras-vae train --resume` starts it) and fed the rest must stop at
the same epoch, report the same best epoch, and restore the weights saved at that epoch
in checkpoints/best.keras.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae._backend import keras
from keras_vae.early_stopping import ResumableEarlyStopping

LOSSES = [5.0, 4.0, 4.5, 4.0, 4.6, 4.7, 3.0, 3.5]  # a tie at epoch 4 is no improvement


class _Model:
    """What EarlyStopping touches: stop_training and the weights (one number: the epoch)."""

    def __init__(self):
        self.stop_training, self.weights = False, [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def _feed(callback, model, epochs):
    for epoch in epochs:
        model.weights = [np.full(1, float(epoch))]
        callback.on_epoch_end(epoch, {"val_loss": LOSSES[epoch]})
        if model.stop_training:
            return epoch
    return None


def _reference(patience):
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                             restore_best_weights=True)
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    stopped = _feed(callback, model, range(len(LOSSES)))
    callback.on_train_end()
    return stopped, callback.best_epoch, model.weights[0][0]


@pytest.mark.parametrize("patience", [2, 3])
@pytest.mark.parametrize("resume_at", [1, 2, 3])
def test_a_resumed_run_stops_where_the_uninterrupted_one_does(patience, resume_at, tmp_path,
                                                              monkeypatch):
    stopped, best_epoch, weights = _reference(patience)
    assert stopped is not None and resume_at <= stopped < len(LOSSES) - 1  # stops early
    rows = {e + 1: {"epoch": e + 1, "val_loss": LOSSES[e]} for e in range(resume_at)}
    best_file = tmp_path / "best.keras"
    best_file.write_bytes(b"stand-in")
    seen_best = min(range(resume_at), key=lambda e: (LOSSES[e], e))
    loaded = type("Loaded", (), {"get_weights": lambda self: [np.full(1, float(seen_best))]})
    monkeypatch.setattr(keras.models, "load_model", lambda path, compile: loaded())
    callback = ResumableEarlyStopping(patience, rows, best_file)
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    assert callback.best == LOSSES[seen_best] and callback.best_epoch == seen_best
    assert _feed(callback, model, range(resume_at, len(LOSSES))) == stopped
    callback.on_train_end()
    assert callback.best_epoch == best_epoch and model.weights[0][0] == weights


def test_the_best_weights_come_from_the_run_s_best_model(tmp_path):
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)
    model(np.zeros((1, 4, 4, 1), "float32"))
    model.save(tmp_path / "best.keras")
    saved = model.get_weights()
    model.set_weights([w + 1.0 for w in saved])
    callback = ResumableEarlyStopping(5, {1: {"val_loss": 2.0}, 2: {"val_loss": float("nan")},
                                          3: {"val_loss": 3.0}}, tmp_path / "best.keras")
    callback.set_model(model)
    callback.on_train_begin()
    assert callback.best == 2.0 and callback.best_epoch == 0 and callback.wait == 1
    callback.on_train_end()
    for got, want in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(got, want)
