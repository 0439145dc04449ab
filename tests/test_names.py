"""keras_vae.names: one registry per family, and every consumer reads it."""

import pytest

import keras_vae
from keras_vae import data, likelihoods, names, objectives, posteriors, priors
from keras_vae.names import Registry


def test_registry_register_lookup_aliases_and_defaults():
    registry = Registry("widget", "WIDGETS")

    @registry.register("round", aliases=("circle",), radius=1.0)
    @registry.register("big_round", radius=10.0, description="a big one")
    class Widget:
        """A widget."""

        def __init__(self, radius=0.5, colour="red", **kwargs):
            self.radius, self.colour, self.kwargs = radius, colour, kwargs

        def get_config(self):
            return {"radius": self.radius, "colour": self.colour}

    assert registry.names() == ("big_round", "round")
    assert "CIRCLE" in registry and "square" not in registry and 3 not in registry
    assert registry.canonical("circle") == "round"
    assert registry.entry("round").description == "A widget."
    assert registry.entry("big_round").description == "a big one"
    # build: defaults, then keyword arguments; only the context the factory names.
    made = registry.build("circle", {"colour": "blue", "unused": 1}, extra=2)
    assert (made.radius, made.colour, made.kwargs) == (1.0, "blue", {"extra": 2})
    assert registry.build("round", radius=3.0).radius == 3.0
    # name_of: the most specific entry whose defaults match the instance.
    assert registry.name_of(Widget(radius=10.0)) == "big_round"
    assert registry.name_of(Widget(radius=1.0)) == "round"
    with pytest.raises(ValueError, match="no registered widget.*WIDGETS.register"):
        registry.name_of(Widget(radius=2.0))
    with pytest.raises(ValueError, match=r"Unknown widget 'square'; choose one of \['big_round', 'round'\]"):
        registry.entry("square")
    # A taken alias cannot be stolen; re-registering a name replaces it.
    with pytest.raises(ValueError, match="taken by 'round'"):
        registry.add("other", object, aliases=("circle",))
    registry.add("round", dict)
    assert registry.get("round") is dict and "circle" not in registry
    registry.remove("round")
    assert registry.names() == ("big_round",)
    with pytest.raises(ValueError, match="non-empty string"):
        registry.add("", dict)


def test_the_package_registers_its_families():
    # The package's own members come first, in this order (other test modules may
    # register toys of their own after them).
    def first(registry, n):
        return registry.names()[:n]

    assert first(names.LIKELIHOODS, 4) == (
        "bernoulli", "continuous_bernoulli", "gaussian", "gaussian_learned_scale")
    assert first(names.PRIORS, 3) == ("normal", "mixture", "vamp")
    assert first(names.POSTERIORS, 1) == ("diagonal_gaussian",)
    assert first(names.OBJECTIVES, 5) == ("elbo", "iwae", "miwae", "piwae", "ciwae")
    assert first(names.GRADIENT_ESTIMATORS, 2) == ("standard", "dreg")
    assert first(names.PRESETS, 3) == ("mlp", "conv", "iwae")
    assert first(names.DATASETS, 3) == ("embedded", "mnist", "fashion_mnist")
    assert names.PRIORS.canonical("standard_normal") == "normal"
    assert names.OBJECTIVES.canonical("vae") == "elbo"


@pytest.mark.parametrize("name", names.LIKELIHOODS.names())
def test_likelihood_names_round_trip(name):
    layer = likelihoods.get(name, (4, 4, 1))
    assert isinstance(layer, likelihoods.Likelihood)
    assert names.LIKELIHOODS.name_of(layer) == name


@pytest.mark.parametrize("name", names.PRIORS.names())
def test_prior_names_round_trip(name):
    layer = priors.get(name, 3, (4, 4, 1))
    assert names.PRIORS.name_of(layer) == name and layer.latent_dim == 3


def test_objective_and_posterior_names():
    for name in names.OBJECTIVES.names():
        objective = objectives.get(name)
        assert names.OBJECTIVES.name_of(objective) == name == objective.name
    head = posteriors.get(None, 5)
    assert names.POSTERIORS.name_of(head) == "diagonal_gaussian" and head.latent_dim == 5


def test_unknown_names_say_what_exists():
    with pytest.raises(ValueError, match=r"Unknown likelihood 'poisson'; choose one of \['bernoulli'"):
        keras_vae.VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="Unknown objective"):
        objectives.get("wake_sleep")
    with pytest.raises(ValueError, match="Unknown gradient_estimator 'reinforce'"):
        keras_vae.VAE(gradient_estimator="reinforce")


def test_data_support_rule_comes_from_the_likelihood_class():
    assert data.unit_interval_likelihood("bernoulli")
    assert data.unit_interval_likelihood("continuous_bernoulli")
    assert not data.unit_interval_likelihood("gaussian")
    with pytest.raises(ValueError, match="Unknown likelihood"):
        data.unit_interval_likelihood("nope")
