"""Encoder and decoder networks: presets for images, as plain (serialisable) Keras models.

An encoder maps x [B, *event_shape] to features [B, h]; the posterior head turns
features into q(z|x). A decoder maps z [N, d] to [N, *event_shape], the
likelihood's logits or location. Any Keras layer or model with these shapes can
stand in for a preset.

Presets:
  mlp   Flatten - Dense(512) - Dense(256), ReLU; mirrored in the decoder.
  conv  Conv(32, s2) - Conv(64, s2) - Dense(256); transposed convolutions back
        (height and width divisible by 4).
  iwae  Burda et al. (2016), one stochastic layer: 784-200-200-(d=50), tanh, and
        50-200-200-784; the output bias starts at the logit of the mean training
        pixel (`VAE.initialize_output_bias`).
"""

import collections.abc

import numpy as np

from keras_vae import names
from keras_vae._backend import keras

names.PRESETS.add("mlp", {"kind": "dense", "hidden_units": (512, 256), "activation": "relu",
                          "latent_dim": 16}, description="Dense 512-256, ReLU (d=16)")
names.PRESETS.add("conv", {"kind": "conv", "filters": (32, 64), "dense_units": 256,
                           "activation": "relu", "latent_dim": 16},
                  description="Conv 32-64 (stride 2) then Dense 256, ReLU (d=16)")
names.PRESETS.add("iwae", {"kind": "dense", "hidden_units": (200, 200), "activation": "tanh",
                           "latent_dim": 50},
                  description="Burda et al.'s 200-200 tanh (d=50)")


class _PresetView(collections.abc.Mapping):
    """`PRESETS[name]` is the spec registered under `name` in `names.PRESETS` (live)."""

    def __getitem__(self, name):
        return names.PRESETS.get(name)

    def __iter__(self):
        return iter(names.PRESETS.names())

    def __len__(self):
        return len(names.PRESETS.names())


#: name -> spec dict ('kind' dense or conv, widths, activation, latent_dim); see names.PRESETS.
PRESETS = _PresetView()

OUTPUT_LAYER_NAME = "logits"


def check_preset(preset):
    """Raises ValueError unless `preset` is a registered preset name."""
    names.PRESETS.entry(preset)


def build_encoder(preset, event_shape, hidden_units=None, activation=None, name="encoder"):
    """Builds a preset encoder: x [B, *event_shape] -> features [B, h]."""
    check_preset(preset)
    spec = PRESETS[preset]
    event_shape = tuple(int(s) for s in event_shape)
    activation = activation or spec["activation"]
    layers = [keras.Input(shape=event_shape)]
    if spec["kind"] == "conv":
        _check_conv_shape(event_shape)
        for filters in spec["filters"]:
            layers.append(keras.layers.Conv2D(filters, 3, strides=2, padding="same",
                                              activation=activation))
        layers += [keras.layers.Flatten(),
                   keras.layers.Dense(spec["dense_units"], activation=activation)]
    else:
        layers.append(keras.layers.Flatten())
        for units in hidden_units or spec["hidden_units"]:
            layers.append(keras.layers.Dense(units, activation=activation))
    return keras.Sequential(layers, name=name)


def build_decoder(preset, latent_dim, event_shape, hidden_units=None, activation=None,
                  name="decoder"):
    """Builds a preset decoder: z [N, latent_dim] -> [N, *event_shape] (logits or location)."""
    check_preset(preset)
    spec = PRESETS[preset]
    event_shape = tuple(int(s) for s in event_shape)
    activation = activation or spec["activation"]
    layers = [keras.Input(shape=(int(latent_dim),))]
    if spec["kind"] == "conv":
        _check_conv_shape(event_shape)
        height, width, channels = event_shape
        f1, f2 = spec["filters"]
        layers += [
            keras.layers.Dense(spec["dense_units"], activation=activation),
            keras.layers.Dense((height // 4) * (width // 4) * f2, activation=activation),
            keras.layers.Reshape((height // 4, width // 4, f2)),
            keras.layers.Conv2DTranspose(f2, 3, strides=2, padding="same", activation=activation),
            keras.layers.Conv2DTranspose(f1, 3, strides=2, padding="same", activation=activation),
            keras.layers.Conv2D(channels, 3, padding="same", name=OUTPUT_LAYER_NAME),
        ]
    else:
        for units in reversed(tuple(hidden_units or spec["hidden_units"])):
            layers.append(keras.layers.Dense(units, activation=activation))
        layers += [
            keras.layers.Dense(int(np.prod(event_shape)), name=OUTPUT_LAYER_NAME),
            keras.layers.Reshape(event_shape),
        ]
    return keras.Sequential(layers, name=name)


def _check_conv_shape(event_shape):
    if len(event_shape) != 3 or event_shape[0] % 4 or event_shape[1] % 4:
        raise ValueError(
            "The conv preset needs images of shape (height, width, channels) with height "
            f"and width divisible by 4, got {event_shape}."
        )


def output_layer(decoder):
    """The decoder's last layer holding the output bias (named 'logits' in the presets)."""
    for layer in reversed(decoder.layers if hasattr(decoder, "layers") else []):
        if layer.name == OUTPUT_LAYER_NAME:
            return layer
    raise ValueError(
        "The decoder has no layer named 'logits' whose bias could be set; name your "
        "decoder's output layer 'logits' or set its bias yourself."
    )
