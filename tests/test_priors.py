"""priors: sampling at a temperature through the shared reparameterised draw."""

import numpy as np
import pytest

from keras_vae import priors
from keras_vae._backend import keras


def test_standard_normal_sample_is_temperature_times_noise():
    prior = priors.StandardNormalPrior(3)
    z = prior.sample(5, temperature=0.5, seed=3)
    eps = keras.random.normal((5, 3), seed=3)
    np.testing.assert_allclose(z.numpy(), 0.5 * eps.numpy(), rtol=1e-6)
    assert prior.distribution().event_shape == (3,)


def test_mixture_sample_at_zero_temperature_is_a_component_location():
    prior = priors.MixtureOfGaussiansPrior(2, num_components=4)
    prior.build()
    z = prior.sample(16, temperature=0.0, seed=1).numpy()
    locs = prior.loc.numpy()
    assert z.shape == (16, 2)
    assert all(np.min(np.abs(locs - row).sum(axis=1)) < 1e-6 for row in z)


def test_vamp_needs_the_encoder_and_get_refuses_other_layers():
    prior = priors.VampPrior(2, (3,), num_components=2)
    prior.build()
    with pytest.raises(ValueError, match="encode"):
        prior.distribution()
    with pytest.raises(TypeError, match="Prior"):
        priors.get(keras.layers.Dense(2), 2, (3,))
    assert isinstance(priors.get(None, 2, (3,)), priors.StandardNormalPrior)
