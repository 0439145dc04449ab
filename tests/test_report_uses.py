"""keras_vae.evaluation.report's additions of issue 13: per-class log p(x|y), `uses_report`.

- `per_class` against a plain numpy group-by (integer labels and one-hot condition rows);
- a conditional model is evaluated on (x, labels): without labels a clear error; with
  them the report has 'per_class_log_likelihood' whose counts add up and whose
  example-weighted mean is the overall log-likelihood, and no gradient SNR;
- `uses_report` says why clustering or the probe does not apply.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import evaluation
from keras_vae._backend import keras
from keras_vae.evaluation import report

SHAPE = (5, 5, 1)


def test_per_class_is_a_group_by():
    rng = np.random.default_rng(0)
    values, labels = rng.normal(size=30), rng.integers(0, 4, 30)
    out = report.per_class(values, labels)
    assert sorted(out) == [str(c) for c in np.unique(labels)]
    for c in np.unique(labels):
        chosen = values[labels == c]
        assert out[str(c)]["mean"] == pytest.approx(chosen.mean())
        assert out[str(c)]["num_examples"] == len(chosen)
        assert out[str(c)]["standard_error"] == pytest.approx(
            chosen.std(ddof=1) / np.sqrt(len(chosen)))
    assert report.per_class(values, np.eye(4)[labels]) == out  # condition rows: by argmax


def _conditional():
    keras.utils.set_random_seed(0)
    return keras_vae.VAE(latent_dim=2, event_shape=SHAPE, encoder="mlp", num_classes=3)


def test_a_conditional_model_needs_labels():
    x = np.random.default_rng(1).random((6,) + SHAPE).astype("float32")
    with pytest.raises(ValueError, match="pass labels"):
        evaluation.evaluate_model(_conditional(), x, k=2, snr_estimates=0, verbose=0)


def test_conditional_report_has_per_class_log_likelihood():
    rng = np.random.default_rng(2)
    x = (rng.random((12,) + SHAPE) < 0.5).astype("float32")
    labels = np.arange(12) % 3
    out = evaluation.evaluate_model(_conditional(), x, k=4, batch_size=6, snr_estimates=4,
                                    verbose=0, labels=labels, include_per_example=True)
    classes = out["per_class_log_likelihood"]
    assert sorted(classes) == ["0", "1", "2"]
    assert sum(c["num_examples"] for c in classes.values()) == 12
    weighted = sum(c["mean"] * c["num_examples"] for c in classes.values()) / 12
    assert weighted == pytest.approx(out["log_likelihood"]["mean"])
    per_example = np.asarray(out["per_example"]["log_likelihood"])
    assert classes["1"]["mean"] == pytest.approx(per_example[labels == 1].mean())
    assert out["gradient_snr"] is None


def test_uses_report_says_what_does_not_apply():
    rng = np.random.default_rng(3)
    x, y = rng.random((20,) + SHAPE).astype("float32"), np.arange(20) % 2
    plain = keras_vae.VAE(latent_dim=2, event_shape=SHAPE, encoder="mlp")
    out = report.uses_report(plain, x, y, x_train=x, y_train=y)
    assert out["clustering"] is None and "single component" in out["clustering_skipped"]
    assert out["linear_probe"]["num_train"] == 20
    out = report.uses_report(_conditional(), x, y % 3)
    assert out["clustering"] is None and "unsupervised" in out["clustering_skipped"]
    assert out["linear_probe"] is None and "conditional" in out["linear_probe_skipped"]
