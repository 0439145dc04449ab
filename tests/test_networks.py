"""networks: presets, the shared MLP, the flat application and the output bias."""

import numpy as np
import pytest

from keras_vae import networks
from keras_vae._backend import keras


def _units(net):
    return [l.units for l in net.layers if isinstance(l, keras.layers.Dense)]


def test_builders_take_hidden_units_and_an_empty_tuple():
    assert _units(networks.build_encoder("mlp", (4, 4, 1), hidden_units=(7,))) == [7]
    assert _units(networks.build_encoder("iwae", (4, 4, 1), hidden_units=())) == []
    assert _units(networks.build_decoder("mlp", 3, (4, 4, 1), hidden_units=(5, 6))) == [6, 5, 16]
    assert _units(networks.build_encoder("iwae", (4, 4, 1))) == [200, 200]


def test_mlp_is_the_identity_without_units():
    net = networks.mlp(3, (), "tanh", name="m")
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(net(x).numpy(), x)
    assert _units(networks.mlp(3, (4, 2), "tanh", name="m2")) == [4, 2]


def test_apply_flat_keeps_the_leading_axes():
    net = networks.mlp(3, (4,), "tanh", name="m")
    z = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    out = networks.apply_flat(net, z)
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(out.numpy()[1], net(z[1]).numpy(), rtol=1e-6)


def test_initialize_output_bias_sets_the_logit_of_the_mean():
    decoder = networks.build_decoder("mlp", 2, (2, 2, 1), hidden_units=(3,))
    x = np.full((4, 2, 2, 1), 0.25, "float32")
    networks.initialize_output_bias(decoder, x, logit=True)
    np.testing.assert_allclose(networks.output_layer(decoder).bias.numpy(), np.log(1 / 3),
                               rtol=1e-6)
    networks.initialize_output_bias(decoder, x, logit=False)
    np.testing.assert_allclose(networks.output_layer(decoder).bias.numpy(), 0.25)


def test_resolve_needs_latent_dim_and_decoder_for_custom_encoders():
    encoder = networks.build_encoder("mlp", (2, 2, 1))
    with pytest.raises(ValueError, match="latent_dim"):
        networks.resolve(encoder, None, None, (2, 2, 1))
    with pytest.raises(ValueError, match="decoder"):
        networks.resolve(encoder, None, 3, (2, 2, 1))
    _, _, d = networks.resolve("iwae", None, None, (2, 2, 1))
    assert d == 50
