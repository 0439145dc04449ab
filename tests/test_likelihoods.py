"""keras_vae.likelihoods against float64 numpy closed forms; names, configs and support."""

import numpy as np
import pytest

from keras_vae import likelihoods
from keras_vae._backend import keras

EVENT = (2, 3)


@pytest.fixture
def logits(rng):
    return rng.normal(scale=2.0, size=(4,) + EVENT).astype("float32")


def _log_sigmoid(l):
    return -np.logaddexp(0.0, -l)


def test_bernoulli_log_prob_is_minus_the_binary_cross_entropy(logits, rng):
    layer = likelihoods.get("bernoulli", EVENT)
    x = rng.random((4,) + EVENT).astype("float32")  # grey values: the 'continuous' reading
    l = logits.astype("float64")
    expected = (x * _log_sigmoid(l) + (1 - x) * _log_sigmoid(-l)).sum(axis=(1, 2))
    np.testing.assert_allclose(layer.distribution(layer(logits)).log_prob(x), expected,
                               rtol=1e-5)
    np.testing.assert_allclose(layer.mean(logits), 1 / (1 + np.exp(-l)), rtol=1e-5)
    assert set(layer.parameters(logits)) == {"probs", "logits"}


def test_continuous_bernoulli_log_prob_includes_its_normaliser(logits, rng):
    layer = likelihoods.get("continuous_bernoulli", EVENT)
    x = rng.random((4,) + EVENT).astype("float32")
    l = logits.astype("float64")
    p = 1 / (1 + np.exp(-l))
    log_c = np.log(2 * np.arctanh(1 - 2 * p) / (1 - 2 * p))  # C(l) = 2 atanh(1 - 2p) / (1 - 2p)
    expected = (log_c + x * _log_sigmoid(l) + (1 - x) * _log_sigmoid(-l)).sum(axis=(1, 2))
    np.testing.assert_allclose(layer.distribution(layer(logits)).log_prob(x), expected,
                               rtol=1e-4)
    assert set(layer.parameters(logits)) == {"mean", "logits"}


def test_gaussian_log_prob_with_a_fixed_and_a_learned_scale(logits, rng):
    x = rng.normal(size=(4,) + EVENT).astype("float32")
    for name, learned in (("gaussian", False), ("gaussian_learned_scale", True)):
        layer = likelihoods.get(name, EVENT)
        layer.build()
        assert layer.learn_scale is learned and len(layer.trainable_weights) == int(learned)
        s = np.broadcast_to(layer.stddev().numpy(), EVENT).astype("float64")
        np.testing.assert_allclose(s, 1.0, rtol=1e-5)  # a learned scale starts at `scale`
        expected = (-0.5 * ((x - logits) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi))
        np.testing.assert_allclose(layer.distribution(layer(logits)).log_prob(x),
                                   expected.sum(axis=(1, 2)), rtol=1e-5)
        params = layer.parameters(logits)
        assert params["scale"].shape == logits.shape
    with pytest.raises(ValueError, match="scale must be > 0"):
        likelihoods.GaussianLikelihood(EVENT, scale=0.0)


def test_get_takes_a_name_a_config_or_a_layer():
    layer = likelihoods.get(None, EVENT)
    assert isinstance(layer, likelihoods.BernoulliLikelihood) and layer.event_shape == EVENT
    assert likelihoods.get(layer, EVENT) is layer
    learned = likelihoods.get("gaussian_learned_scale", EVENT)
    again = likelihoods.get(keras.saving.serialize_keras_object(learned), EVENT)
    assert isinstance(again, likelihoods.GaussianLikelihood)
    assert again.get_config() == learned.get_config()
    with pytest.raises(ValueError, match="Unknown likelihood 'poisson'"):
        likelihoods.get("poisson", EVENT)


@pytest.mark.parametrize("name, inside, outside", [
    ("bernoulli", 0.5, 1.5),
    ("continuous_bernoulli", 0.0, -0.1),
    ("gaussian", -40.0, np.nan),
])
def test_validate_holds_the_data_to_the_support(name, inside, outside):
    layer = likelihoods.get(name, EVENT)
    layer.validate(np.full((2,) + EVENT, inside, "float32"))
    with pytest.raises(ValueError, match="outside the support|NaN"):
        layer.validate(np.full((2,) + EVENT, outside, "float32"), "x")
