"""keras_vae.validation: every data check, the support rule asked of the likelihood class."""

import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import likelihoods, names, validation
from keras_vae._backend import tfd


@pytest.fixture
def positive_likelihood():
    """A toy likelihood on (0, inf), registered from this file alone, removed afterwards."""

    @names.LIKELIHOODS.register("toy_positive")
    class PositiveLikelihood(likelihoods.Likelihood):
        support = (0.0, None)

        def distribution(self, params):
            return tfd.Independent(tfd.Exponential(tf.nn.softplus(params)),
                                   reinterpreted_batch_ndims=self._event_ndims())

    yield PositiveLikelihood
    names.LIKELIHOODS.remove("toy_positive")


@pytest.fixture(scope="module")
def model():
    return keras_vae.VAE(encoder="mlp", latent_dim=2, seed=0)


def _images(n=4):
    return (np.random.default_rng(0).random((n, 28, 28, 1)) < 0.3).astype("float32")


# --------------------------------------------------------------------------- finite values


def test_check_finite_counts_the_bad_values_and_names_the_first():
    x = np.zeros((3, 4), "float32")
    x[1, 2], x[2, 0] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"x_test contains 2 non-finite.*Inf at index \(1, 2\)"):
        validation.check_finite(x, "x_test")
    validation.check_finite(np.arange(5))  # integers are always finite
    validation.check_finite(tf.ones([2, 2]))  # tensors are read too
    assert likelihoods.check_finite is validation.check_finite  # the old public name


# --------------------------------------------------------------------------- the support rule


def test_the_support_comes_from_the_likelihood_class_by_name_class_or_layer():
    assert validation.likelihood_support("bernoulli") == (0.0, 1.0)
    assert validation.likelihood_support("gaussian_learned_scale") == (None, None)
    assert validation.likelihood_support(likelihoods.ContinuousBernoulliLikelihood) == (0.0, 1.0)
    assert validation.likelihood_support(likelihoods.GaussianLikelihood((2,))) == (None, None)
    assert validation.unit_interval_likelihood("continuous_bernoulli")
    assert not validation.unit_interval_likelihood("gaussian")
    with pytest.raises(ValueError, match="Unknown likelihood 'poisson'"):
        validation.likelihood_support("poisson")
    with pytest.raises(ValueError, match="no `support`"):
        validation.likelihood_support(object())


def test_a_registered_likelihood_brings_its_support_to_every_check(positive_likelihood):
    x = np.full((2, 3, 3), 5.0, "float32")
    assert validation.likelihood_support("toy_positive") == (0.0, None)
    np.testing.assert_array_equal(validation.check_images(x, "x", "toy_positive")[..., 0], x)
    with pytest.raises(ValueError, match=r"negative values.*needs values in \[0, inf\)"):
        validation.check_images(-x, "x", "toy_positive")
    layer = positive_likelihood((3, 3))
    layer.validate(x)
    with pytest.raises(ValueError, match=r"outside the support \[0.0, None\]"):
        layer.validate(-x)
    assert not validation.unit_interval_likelihood("toy_positive")


@pytest.mark.parametrize("x, likelihood, match", [
    (np.full((2, 3), 255, "uint8"), "bernoulli", r"integer values up to 255 \(dtype uint8\)"),
    (np.full((2, 3), 1.5, "float32"), "continuous_bernoulli",
     r"values in \[1.5, 1.5\], outside the support \[0.0, 1.0\].*ContinuousBernoulli"),
    (np.full((2, 3), -0.5, "float32"), "bernoulli", "outside the support"),
    (np.full((2, 3), np.nan, "float32"), "gaussian", "NaN"),
])
def test_check_support_names_the_problem(x, likelihood, match):
    layer = likelihoods.get(likelihood, (3,))
    with pytest.raises(ValueError, match=match):
        validation.check_support(x, layer, "x")


def test_check_support_passes_what_fits():
    validation.check_support(np.array([[0, 1]], "uint8"), "bernoulli")  # 0/1 integers
    validation.check_support(np.full((2, 3), -7.0), "gaussian")
    validation.check_support(np.zeros((0, 3), "float32"), "bernoulli")  # empty


# --------------------------------------------------------------------------- images and labels


def test_check_images_converts_bools_pixels_and_adds_a_channel():
    pixels = np.array([[[0, 255], [51, 0]]], "uint8")
    np.testing.assert_allclose(validation.check_images(pixels)[..., 0], pixels / 255.0)
    binary = np.array([[[0, 1], [1, 0]]], "int64")
    np.testing.assert_array_equal(validation.check_images(binary)[..., 0], binary)
    flags = np.array([[[True, False]]])
    out = validation.check_images(flags)
    assert out.dtype == np.float32 and out.shape == (1, 1, 2, 1)
    grey = np.random.default_rng(0).random((2, 4, 4, 3))
    assert validation.check_images(grey).dtype == np.float32


@pytest.mark.parametrize("x, likelihood, match", [
    (np.array(["a", "b"]), "bernoulli", "dtype <U1"),
    (np.zeros((4, 16), "float32"), "bernoulli", r"shape \(4, 16\); expected images"),
    (np.zeros((2, 4, 4, 5), "float32"), "bernoulli", "5 channels"),
    (np.zeros((0, 4, 4), "float32"), "bernoulli", "is empty"),
    (np.full((1, 2, 2), 300, "int32"), "gaussian", r"integers in \[300, 300\]"),
    (np.full((1, 2, 2), 1e39), "gaussian", "beyond the float32 range"),
    (np.full((1, 2, 2), 2.0), "bernoulli", r"values above 1 \(max 2.0\).*divide 0-255"),
    (np.full((1, 2, 2), -1.0), "continuous_bernoulli", r"negative values \(min -1.0\)"),
    (np.full((1, 2, 2), np.inf), "gaussian", "Inf"),
])
def test_check_images_names_the_problem(x, likelihood, match):
    with pytest.raises(ValueError, match=match):
        validation.check_images(x, "data.npy", likelihood)


def test_gaussian_images_may_take_any_finite_value():
    x = np.full((1, 2, 2), -3.0)
    np.testing.assert_array_equal(validation.check_images(x, likelihood="gaussian")[..., 0], x)


def test_check_labels_wants_one_per_example():
    assert validation.check_labels(None, 3) is None
    np.testing.assert_array_equal(validation.check_labels([1, 2, 3], 3), [1, 2, 3])
    with pytest.raises(ValueError, match=r"y_test have shape \(2,\); expected \(3,\)"):
        validation.check_labels([1, 2], 3, "y_test")


def test_check_unit_interval_refuses_what_cannot_be_binarised():
    validation.check_unit_interval(np.array([0.0, 0.5, 1.0]))
    validation.check_unit_interval(np.zeros(0))
    for bad in (np.array([0.5, 1.5]), np.array([-0.1]), np.array([np.nan])):
        with pytest.raises(ValueError, match=r"\[0, 1\] to binarise"):
            validation.check_unit_interval(bad, "x")


# --------------------------------------------------------------------------- model inputs


@pytest.mark.parametrize("x", [
    np.zeros((4, 784), "float32"),
    np.array(["a"] * 4 * 784).reshape(4, 28, 28, 1),
    _images() * 2.0,
    (np.arange(4 * 784) % 256).astype("uint8").reshape(4, 28, 28, 1),
    tf.data.Dataset.from_tensor_slices(_images() - 1.0).batch(2),
    (np.zeros((4, 10), "float32"), None),
])
def test_check_model_inputs_says_what_validate_inputs_says(model, x):
    with pytest.raises(ValueError) as direct:
        validation.check_model_inputs(model, x, "x")
    with pytest.raises(ValueError) as method:
        model.validate_inputs(x, "x")
    assert str(direct.value) == str(method.value)


def test_check_model_inputs_messages(model):
    with pytest.raises(ValueError, match=r"shape \(4, 784\).*expects \(28, 28, 1\)"):
        validation.check_model_inputs(model, np.zeros((4, 784), "float32"))
    with pytest.raises(ValueError, match="has dtype <U1; expected a numeric array"):
        validation.check_model_inputs(model, np.array(["a"] * 784).reshape(1, 28, 28, 1))
    batches = tf.data.Dataset.from_tensor_slices((_images() * np.nan, np.arange(4))).batch(2)
    with pytest.raises(ValueError, match="the first batch of train.*NaN"):
        validation.check_model_inputs(model, batches, "train")


def test_check_model_inputs_passes_what_fits_and_leaves_generators_alone(model):
    validation.check_model_inputs(model, None)
    validation.check_model_inputs(model, _images())
    validation.check_model_inputs(model, (_images(), np.arange(4)))
    validation.check_model_inputs(model, tf.constant(_images()))
    validation.check_model_inputs(model, tf.data.Dataset.from_tensor_slices(_images()).batch(2))
    validation.check_model_inputs(model, (batch for batch in [_images() * 9]))  # not checked
