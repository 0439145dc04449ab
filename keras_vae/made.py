r"""MADE: a masked autoencoder for distribution estimation, as a Keras 3 layer.

`tfb.AutoregressiveNetwork` is a tf_keras layer (it does not mix with Keras 3
models), so the flows of `keras_vae.flows` use this one. Every unit gets a degree;
input i has degree m(i) in 1..d (in the chosen order), hidden units degrees cycling
through 0..d-1, output i the degree m(i) of its input. A weight is kept only where
the degrees allow it (Germain et al., 2015):

```none
input -> hidden, hidden -> hidden:   M[k, l] = 1 if m(l) >= m(k)
hidden -> output:                    M[k, i] = 1 if m(i) >  m(k)
h_1 = act((M_1 * W_1) x + V c + b_1),  ...,  out = (M_L * W_L) h + b_L    [..., d, P]
```

so output i (its P parameters) depends on x_j only where m(j) < m(i): the Jacobian
d out / d x is strictly triangular in that order. The context c (e.g. the encoder's
features, as in IAF) enters the first hidden layer unmasked, and hidden units of
degree 0 carry it to every output.

Example:

```python
made = MADE(event_size=4, num_params=2, hidden_units=(32,), context_size=8)
out = made(z, context=h)        # z [..., 4], h [..., 8] (broadcasting) -> [..., 4, 2]
```

References:
  M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for
    Distribution Estimation. ICML 2015.
"""

import numpy as np

from keras_vae._backend import keras, tf

#: The input orders a MADE accepts: degrees 1..d, or d..1.
ORDERS = ("left-to-right", "right-to-left")


def degrees(event_size, hidden_units, order="left-to-right", has_context=False):
    """The degrees of the input (= output) units and of each hidden layer.

    Args:
      event_size: d.
      hidden_units: the widths of the hidden layers.
      order: one of `ORDERS`.
      has_context: whether a context feeds the first layer (degree-0 units then
        carry it; they are also used when d = 1).

    Returns:
      (input degrees [d], [hidden degrees [H_l] per layer]), int numpy arrays.
    """
    d = int(event_size)
    inputs = np.arange(1, d + 1)
    if order == "right-to-left":
        inputs = inputs[::-1].copy()
    low = 0 if has_context or d == 1 else 1
    span = d - low
    hidden = [low + np.arange(int(units)) % span for units in hidden_units]
    return inputs, hidden


def masks(event_size, num_params, hidden_units, order="left-to-right", has_context=False):
    """The 0/1 float32 masks of the layers: [d, H_1], [H_1, H_2], ..., [H_L, d * P].

    Output column c is parameter c % P of unit c // P.
    """
    inputs, hidden = degrees(event_size, hidden_units, order, has_context)
    layers = [inputs] + hidden
    result = [(b[None, :] >= a[:, None]).astype("float32") for a, b in zip(layers, layers[1:])]
    outputs = np.repeat(inputs, int(num_params))
    result.append((outputs[None, :] > layers[-1][:, None]).astype("float32"))
    return result


@keras.saving.register_keras_serializable(package="keras_vae")
class MADE(keras.layers.Layer):
    """An autoregressive network: x [..., d] (and a context) -> [..., d, num_params].

    Args:
      event_size: d.
      num_params: P, the outputs per unit (2 for a shift and a gate).
      hidden_units: the widths of the hidden layers (at least one).
      context_size: the size of the context vector (0: none).
      order: 'left-to-right' (output i sees x_<i) or 'right-to-left' (x_>i).
      activation: the hidden layers' activation.
      output_initializer: the last layer's kernel initializer ('zeros' makes the
        network's output its bias at initialisation).

    Raises:
      ValueError: a size < 1, no hidden layer, or an unknown order.
    """

    def __init__(self, event_size, num_params=2, hidden_units=(64,), context_size=0,
                 order="left-to-right", activation="elu", output_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        hidden_units = tuple(int(h) for h in hidden_units)
        if int(event_size) < 1 or int(num_params) < 1 or int(context_size) < 0:
            raise ValueError(f"MADE needs event_size >= 1, num_params >= 1 and context_size "
                             f">= 0, got {event_size}, {num_params}, {context_size}.")
        if not hidden_units or min(hidden_units) < 1:
            raise ValueError(f"MADE needs at least one hidden layer of >= 1 units, got "
                             f"{hidden_units}.")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
        self.event_size, self.num_params = int(event_size), int(num_params)
        self.hidden_units, self.context_size = hidden_units, int(context_size)
        self.order = order
        self.activation = keras.activations.get(activation)
        self._activation_name = activation
        self.output_initializer = output_initializer
        self._masks = masks(self.event_size, self.num_params, hidden_units, order,
                            self.context_size > 0)

    def build(self, input_shape=None):
        sizes = (self.event_size,) + self.hidden_units + (self.event_size * self.num_params,)
        self.kernels, self.biases = [], []
        for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            last = index == len(sizes) - 2
            self.kernels.append(self.add_weight(
                shape=(n_in, n_out), name=f"kernel_{index}",
                initializer=self.output_initializer if last else "glorot_uniform"))
            self.biases.append(self.add_weight(shape=(n_out,), name=f"bias_{index}",
                                               initializer="zeros"))
        self.context_kernel = None
        if self.context_size:
            self.context_kernel = self.add_weight(
                shape=(self.context_size, self.hidden_units[0]), name="context_kernel",
                initializer="glorot_uniform")
        self.built = True

    def call(self, inputs, context=None):
        """x [..., d] (float32), context [..., c] broadcasting with x -> [..., d, P]."""
        if self.context_size and context is None:
            raise ValueError(f"This MADE was built with context_size={self.context_size}: "
                             "call it with a context.")
        h = tf.cast(inputs, "float32")
        last = len(self.kernels) - 1
        for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = tf.matmul(h, kernel * tf.constant(self._masks[index])) + bias
            if index == 0 and self.context_kernel is not None:
                h = h + tf.matmul(tf.cast(context, "float32"), self.context_kernel)
            if index < last:
                h = self.activation(h)
        shape = tf.concat([tf.shape(h)[:-1], [self.event_size, self.num_params]], axis=0)
        return tf.reshape(h, shape)

    def get_config(self):
        config = super().get_config()
        config.update(event_size=self.event_size, num_params=self.num_params,
                      hidden_units=list(self.hidden_units), context_size=self.context_size,
                      order=self.order, activation=self._activation_name,
                      output_initializer=keras.initializers.serialize(
                          keras.initializers.get(self.output_initializer)))
        return config


__all__ = ["ORDERS", "degrees", "masks", "MADE"]
