"""Pins Keras to the TensorFlow backend: every density here is a TFP distribution on TF."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_vae needs the TensorFlow backend of Keras (its densities are "
        "tensorflow_probability distributions), but Keras was configured with "
        f"backend {keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow "
        "before importing keras."
    )

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions

__all__ = ["keras", "tf", "tfp", "tfd"]
