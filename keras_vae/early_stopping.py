"""`ResumableEarlyStopping`: Keras's EarlyStopping for run folders that are resumed.

A run of `keras-vae train --early-stopping PATIENCE` that is killed and resumed must
stop at the epoch the uninterrupted run stops at, and end with the same best weights.
"""

import math
import pathlib

from keras_vae._backend import keras


def finite_val_losses(rows):
    """The finite [(epoch, val_loss)] of history rows {epoch: {metric: value}}, by epoch."""
    return sorted((e, r["val_loss"]) for e, r in rows.items()
                  if isinstance(r.get("val_loss"), float) and math.isfinite(r["val_loss"]))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on val_loss that a resumed run continues where the run left it.

    Keras's resets its best value, the best epoch and the epochs waited at every
    `fit`; a run resumed after a kill would then wait `patience` epochs afresh and
    could only restore weights it saw itself. This one takes them from the run's
    history (`rows`: the first epoch with the lowest finite val_loss, and the epochs
    with a val_loss since) and the best weights from `best_path` (the run's
    checkpoints/best.keras, written by `backup.BestModel` at that epoch), so it
    stops at the epoch an uninterrupted run stops at and restores the same weights.
    """

    def __init__(self, patience, rows, best_path):
        super().__init__(monitor="val_loss", patience=int(patience),
                         restore_best_weights=True, verbose=1)
        self.rows, self.best_path = rows, pathlib.Path(best_path)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        seen = finite_val_losses(self.rows)
        if not seen:
            return
        best_epoch, best = min(seen, key=lambda pair: (pair[1], pair[0]))
        self.best, self.best_epoch = best, best_epoch - 1  # (Keras counts epochs from 0)
        self.wait = sum(1 for e, _ in seen if e > best_epoch)
        if self.best_path.is_file():
            self.best_weights = keras.models.load_model(self.best_path,
                                                        compile=False).get_weights()


__all__ = ["finite_val_losses", "ResumableEarlyStopping"]
