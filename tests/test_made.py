"""made: the masks make MADE autoregressive (a strictly triangular Jacobian), and it serialises."""

import numpy as np
import pytest

from keras_vae import made
from keras_vae._backend import keras, tf


def _randomise(layer, seed=0):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.7, size=weight.shape).astype("float32"))


def _jacobian(layer, x, context=None):
    """d out[:, i, p] / d x[:, j] as [B, d, P, d]."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, context=context)
    return tape.batch_jacobian(out, x).numpy()


@pytest.mark.parametrize("order", made.ORDERS)
@pytest.mark.parametrize("hidden", [(16,), (12, 9)])
def test_jacobian_is_strictly_triangular_in_the_order(order, hidden):
    d = 5
    layer = made.MADE(d, num_params=2, hidden_units=hidden, context_size=3, order=order)
    layer.build((None, d))
    _randomise(layer)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, d)).astype("float32")
    context = rng.normal(size=(4, 3)).astype("float32")
    jac = np.abs(_jacobian(layer, x, context)).max(axis=(0, 2))  # [d_out, d_in]
    allowed = np.tril(np.ones((d, d)), -1).astype(bool)
    if order == "right-to-left":
        allowed = np.triu(np.ones((d, d)), 1).astype(bool)
    assert np.all(jac[~allowed] == 0.0)
    # ...and the network uses the connections it is allowed (no dead mask).
    assert np.all(jac[allowed] > 0.0)


def test_masks_match_the_degree_rule():
    masks = made.masks(3, 2, (4,), has_context=False)
    inputs, (hidden,) = made.degrees(3, (4,))
    np.testing.assert_array_equal(inputs, [1, 2, 3])
    np.testing.assert_array_equal(hidden, [1, 2, 1, 2])
    assert masks[0].shape == (3, 4) and masks[1].shape == (4, 6)
    np.testing.assert_array_equal(masks[0][:, 0], [1, 0, 0])  # a degree-1 unit sees x_1 only
    np.testing.assert_array_equal(masks[1][0], [0, 0, 1, 1, 1, 1])  # x_1 -> outputs 2, 3


def test_context_reaches_every_output_and_the_first_unit_sees_only_it():
    layer = made.MADE(1, num_params=2, hidden_units=(8,), context_size=2)
    layer.build((None, 1))
    _randomise(layer)
    x = np.zeros((3, 1), "float32")
    context = tf.constant(np.random.default_rng(2).normal(size=(3, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(context)
        out = layer(x, context=context)
    assert np.all(np.abs(tape.batch_jacobian(out, context).numpy()).max(axis=-1) > 0)
    assert np.all(_jacobian(layer, x, context) == 0.0)  # d = 1: no input reaches the output


def test_broadcasts_a_sample_axis_and_zero_output_init():
    layer = made.MADE(4, num_params=3, hidden_units=(8,), context_size=2)
    out = layer(np.ones((5, 6, 4), "float32"), context=np.ones((6, 2), "float32"))
    assert out.shape == (5, 6, 4, 3)
    np.testing.assert_array_equal(out.numpy(), 0.0)  # zero last kernel and bias


def test_config_round_trip_and_save(tmp_path):
    layer = made.MADE(3, num_params=2, hidden_units=(6, 5), context_size=2,
                      order="right-to-left", activation="tanh", name="m")
    layer.build((None, 3))
    _randomise(layer)
    x, c = np.ones((2, 3), "float32"), np.ones((2, 2), "float32")
    clone = made.MADE.from_config(layer.get_config())
    clone.build((None, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x, context=c).numpy(), layer(x, context=c).numpy())
    inputs = keras.Input((3,))
    model = keras.Model(inputs, made.MADE(3, hidden_units=(4,), output_initializer="ones")(inputs))
    model.save(tmp_path / "made.keras")
    loaded = keras.saving.load_model(tmp_path / "made.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden layer"):
        made.MADE(3, hidden_units=())
    with pytest.raises(ValueError, match="event_size"):
        made.MADE(0)
    with pytest.raises(ValueError, match="order"):
        made.MADE(3, order="random")
    layer = made.MADE(3, context_size=2)
    with pytest.raises(ValueError, match="context"):
        layer(np.ones((1, 3), "float32"))
