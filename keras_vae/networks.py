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
from keras_vae._backend import keras, tf

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


def resolve(encoder, decoder, latent_dim, event_shape, condition_dim=0):
    """The (encoder, decoder, latent_dim) a VAE is given as names, config dicts or layers.

    Args:
      encoder: a preset name, a Keras config dict or a layer.
      decoder: as `encoder`, or None for the encoder's preset.
      latent_dim: the size d of z, or None for the preset's.
      event_shape: the shape of one example.
      condition_dim: c, the width of a conditional model's condition: a preset
        decoder then reads concat(z, c(y)), [N, d + c].

    Returns:
      The two networks and d.

    Raises:
      ValueError: for an unknown preset, or a missing latent_dim or decoder when
        the encoder is not a preset name.
    """
    if isinstance(encoder, str):
        check_preset(encoder)
        latent_dim = latent_dim or PRESETS[encoder]["latent_dim"]
        decoder = encoder if decoder is None else decoder
        encoder = build_encoder(encoder, event_shape)
    elif isinstance(encoder, dict):
        encoder = keras.saving.deserialize_keras_object(encoder)
    if latent_dim is None:
        raise ValueError("latent_dim is required when the encoder is not a preset name.")
    if isinstance(decoder, str):
        decoder = build_decoder(decoder, int(latent_dim) + int(condition_dim), event_shape)
    elif isinstance(decoder, dict):
        decoder = keras.saving.deserialize_keras_object(decoder)
    elif decoder is None:
        raise ValueError("decoder is required when the encoder is not a preset name.")
    return encoder, decoder, int(latent_dim)


def build_encoder(preset, event_shape, hidden_units=None, activation=None, name="encoder"):
    """Builds a preset encoder: x [B, *event_shape] -> features [B, h].

    Args:
      preset: a registered preset name ('mlp', 'conv', 'iwae').
      event_shape: the shape of one example.
      hidden_units: the Dense widths of a dense preset (None: the preset's; () none).
      activation: the hidden activation (None: the preset's).
      name: the model's name.

    Returns:
      A `keras.Sequential`.
    """
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
        for units in spec["hidden_units"] if hidden_units is None else hidden_units:
            layers.append(keras.layers.Dense(int(units), activation=activation))
    return keras.Sequential(layers, name=name)


def build_decoder(preset, latent_dim, event_shape, hidden_units=None, activation=None,
                  name="decoder"):
    """Builds a preset decoder: z [N, latent_dim] -> [N, *event_shape] (logits or location).

    Args:
      preset, hidden_units, activation, name: as for `build_encoder` (the widths
        are mirrored).
      latent_dim: the size d of z.
      event_shape: the shape of one example.

    Returns:
      A `keras.Sequential` whose output layer is named 'logits'.
    """
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
        for units in reversed(tuple(spec["hidden_units"] if hidden_units is None
                                    else hidden_units)):
            layers.append(keras.layers.Dense(int(units), activation=activation))
        layers += [
            keras.layers.Dense(int(np.prod(event_shape)), name=OUTPUT_LAYER_NAME),
            keras.layers.Reshape(event_shape),
        ]
    return keras.Sequential(layers, name=name)


def mlp(input_dim, units, activation, name):
    """z [N, input_dim] -> features [N, h]: Dense layers, or the identity if `units` is empty.

    Args:
      input_dim: the input width.
      units: the Dense widths.
      activation: their activation.
      name: the model's name.

    Returns:
      A `keras.Sequential`.
    """
    layers = [keras.Input(shape=(int(input_dim),))]
    layers += [keras.layers.Dense(int(u), activation=activation) for u in units]
    if len(layers) == 1:
        layers.append(keras.layers.Identity())
    return keras.Sequential(layers, name=name)


def call_stopped(layer, *args, **kwargs):
    """`layer(*args)` with its weights under stop_gradient, the inputs still differentiable."""
    trainable = [tf.stop_gradient(v) for v in layer.trainable_variables]
    outputs, _ = layer.stateless_call(trainable, list(layer.non_trainable_variables),
                                      *args, **kwargs)
    return outputs


def apply_flat(fn, z):
    """fn on z [..., w] flattened to [N, w], its outputs given z's leading shape back.

    Args:
      fn: maps [N, w] to a tensor (or a nest of tensors) [N, ...].
      z: the input, [..., w] with w known statically.

    Returns:
      fn's outputs, each [..., *trailing shape].
    """
    z = tf.convert_to_tensor(z)
    lead = tf.shape(z)[:-1]
    out = fn(tf.reshape(z, [-1, z.shape[-1]]))

    def restore(t):
        tail = t.shape[1:]
        tail = tail.as_list() if tail.is_fully_defined() else tf.shape(t)[1:]
        return tf.reshape(t, tf.concat([lead, tail], axis=0))

    return tf.nest.map_structure(restore, out)


def initialize_output_bias(decoder, x, logit):
    """Sets the decoder's output bias to the mean training example (Burda et al., 2016).

    ```none
    b = logit(clip(mean_n x_n, 1e-3, 1 - 1e-3))   (logit=True: Bernoulli-type outputs)
    b = mean_n x_n                               (logit=False)
    ```

    A bias smaller than one example (a convolution's, per channel) gets the mean
    over all the other axes.

    Args:
      decoder: a decoder whose output layer is named 'logits'.
      x: training examples [N, *event_shape].
      logit: whether the outputs are logits.
    """
    layer = output_layer(decoder)
    x = np.asarray(x, "float64")
    bias_shape = tuple(layer.bias.shape)
    mean = x.mean(axis=0).reshape(-1)
    if bias_shape != mean.shape:
        mean = x.reshape(-1, bias_shape[-1]).mean(axis=0)
    if logit:
        mean = np.clip(mean, 1e-3, 1 - 1e-3)
        mean = np.log(mean) - np.log1p(-mean)
    layer.bias.assign(mean.astype("float32"))


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


__all__ = [
    "PRESETS", "OUTPUT_LAYER_NAME", "check_preset", "resolve", "build_encoder",
    "build_decoder", "mlp", "call_stopped", "apply_flat", "initialize_output_bias", "output_layer",
]
