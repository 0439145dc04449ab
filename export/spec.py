r"""What an export needs to know about a model, read once from it: `ExportSpec`.

A model is exportable when it has the TFP-free hooks `decoder_parameters(z)`
(a dict with 'mean' and the likelihood's parameters, each [N, *event]) and
`encoder_parameters(x)` (loc, scale [N, d]), and a prior whose `components()`
give a mixture of diagonal Gaussians, baked into the graphs as constants:

```none
p(z) = sum_c pi_c N(z; loc_c, diag(scale_c^2)),   pi = softmax(logits), C >= 1
```

`prepare(model_or_path)` loads a .keras file if given one and returns
(model, spec). Names come from the registry (`names.LIKELIHOODS`, `names.PRIORS`).
"""

import os
import pathlib

import numpy as np

from keras_vae import names
from keras_vae._backend import keras, tf
from keras_vae.export import contract

_HOOKS = ("decoder_parameters", "encoder_parameters", "latent_dim", "event_shape")


class ExportSpec:
    """What the exported graphs need to know about a model, read once from it.

    Attributes:
      latent_dim: int d.
      event_shape: tuple, the shape of one image.
      likelihood: the registered name ('bernoulli', 'gaussian', ...) or the class name.
      prior: the registered name ('normal', 'mixture', 'vamp') or the class name.
      prior_logits: float32 [C] or None (a single Gaussian).
      prior_loc, prior_scale: float32 [C, d].
      decoder_outputs: sorted names of the decoder's outputs.
      noise_per_pixel: k, uniforms per pixel the likelihood's `draw_pixels` takes
        (0: the samplers return the mean image).
    """

    def __init__(self, model):
        for attr in _HOOKS:
            if not hasattr(model, attr):
                raise TypeError(
                    f"Cannot export {type(model).__name__}: it has no `{attr}`. Export needs "
                    "a keras_vae.VAE (or a subclass) with the TFP-free hooks "
                    "decoder_parameters(z) and encoder_parameters(x)."
                )
        self.latent_dim = int(model.latent_dim)
        self.event_shape = tuple(int(s) for s in model.event_shape)
        self.num_classes, self.condition_shape = condition_of(model)
        self.class_loc = self.class_scale = self.vector_prior = None
        self.likelihood = registered_name(names.LIKELIHOODS, getattr(model, "likelihood", None))
        self.prior = registered_name(names.PRIORS, getattr(model, "prior", None))
        prior = getattr(model, "prior", None)
        if self.num_classes and hasattr(prior, "class_components"):
            self.class_loc, self.class_scale = class_components(model, self.num_classes)
            self.prior_logits = self.prior_loc = self.prior_scale = None
        elif self.condition_shape and getattr(prior, "conditional", False):
            # p(z|c) = N(c M, diag(softplus(c R) + min_scale)^2) (priors.ClassConditionalPrior)
            self.vector_prior = (np.asarray(prior.loc, "float32"),
                                 np.asarray(prior.raw_scale, "float32"), float(prior.min_scale))
            self.prior_logits = self.prior_loc = self.prior_scale = None
        else:
            self.prior_logits, self.prior_loc, self.prior_scale = prior_components(model)
        self.decoder_outputs = self._decoder_outputs(model)
        self.noise_per_pixel = pixel_noise(model, self)

    @property
    def condition_dim(self):
        """c, the width of the condition vector (C one-hot for classes); 0 when unconditional."""
        if self.num_classes:
            return int(self.num_classes)
        return int(np.prod(self.condition_shape)) if self.condition_shape else 0

    @property
    def class_conditional_prior(self):
        """True if the sampler draws z from p(z|y), one Gaussian per class."""
        return self.class_loc is not None

    def decoder_parameters(self, model, z, condition=None):
        """model.decoder_parameters(z[, condition]): the condition vector only when conditional."""
        if self.condition_dim:
            if condition is None:
                condition = tf.zeros((tf.shape(z)[0], self.condition_dim), "float32")
            return model.decoder_parameters(z, condition=condition)
        return model.decoder_parameters(z)

    def encoder_parameters(self, model, x, condition=None):
        """model.encoder_parameters(x[, condition]), as `decoder_parameters`."""
        if self.condition_dim:
            return model.encoder_parameters(x, condition=condition)
        return model.encoder_parameters(x)

    def _decoder_outputs(self, model):
        outputs = self.decoder_parameters(model, tf.zeros((1, self.latent_dim), "float32"))
        if contract.MEAN not in outputs:
            raise ValueError(
                f"{type(model).__name__}.decoder_parameters returned {sorted(outputs)}; "
                f"export needs a '{contract.MEAN}' entry (the image a decoder draws for z)."
            )
        for key, value in outputs.items():
            shape = tuple(value.shape)
            if shape != (1,) + self.event_shape:
                raise ValueError(
                    f"decoder_parameters(z)['{key}'] has shape {shape} for z of shape "
                    f"(1, {self.latent_dim}); export expects (1,) + {self.event_shape}."
                )
        return sorted(outputs)

    @property
    def num_components(self):
        """C, the number of Gaussians in the prior (the classes' for p(z|y); 1 for p(z|c))."""
        if self.vector_prior is not None:
            return 1
        loc = self.class_loc if self.class_conditional_prior else self.prior_loc
        return int(loc.shape[0])

    @property
    def standard_normal(self):
        """True if the prior is N(0, I): z = temperature * eps exactly."""
        return (not self.class_conditional_prior and self.vector_prior is None
                and self.prior_logits is None
                and not np.any(self.prior_loc)
                and np.all(self.prior_scale == 1.0))

    def describe(self):
        """The JSON-ready description written into the manifest's 'model'."""
        return {
            "latent_dim": self.latent_dim,
            "event_shape": list(self.event_shape),
            "likelihood": self.likelihood,
            "prior": self.prior,
            "prior_components": self.num_components,
            "decoder_outputs": list(self.decoder_outputs),
            "noise_per_pixel": self.noise_per_pixel,
            "condition": self.describe_condition(),
        }

    def describe_condition(self):
        """The manifest's 'model.condition': None, or {kind, input, num_classes | shape, prior}."""
        if not self.condition_dim:
            return None
        if self.num_classes:
            return {"kind": "class", "input": contract.LABEL, "dtype": "int64",
                    "num_classes": int(self.num_classes),
                    "prior": "class_conditional" if self.class_conditional_prior else "shared"}
        return {"kind": "vector", "input": contract.CONDITION, "dtype": "float32",
                "shape": list(self.condition_shape), "size": self.condition_dim,
                "prior": "shared" if self.vector_prior is None else "conditional"}


def condition_of(model):
    """(num_classes or None, condition_shape tuple or None) of a model (interface 1)."""
    if not getattr(model, "is_conditional", False):
        return None, None
    num_classes = getattr(model, "num_classes", None)
    if num_classes:
        return int(num_classes), None
    shape = getattr(model, "condition_shape", None)
    if shape is None:
        shape = (int(model.condition_dim),)
    return None, tuple(int(s) for s in np.atleast_1d(shape))


def class_components(model, num_classes):
    """(loc [C, d], scale [C, d]) float32 of p(z|y) from `model.prior.class_components()`."""
    loc, scale = (np.asarray(v, "float32") for v in model.prior.class_components())
    want = (int(num_classes), int(model.latent_dim))
    if loc.shape != want or scale.shape != want:
        raise ValueError(f"The class-conditional prior gives loc {loc.shape} and scale "
                         f"{scale.shape}; expected {want} each.")
    return loc, scale


def pixel_noise(model, spec):
    """k = the likelihood's `noise_per_pixel` (interface 3), checked on one draw; 0 for none.

    Raises:
      ValueError: k is not a non-negative integer, or `draw_pixels` gives the wrong shape.
    """
    likelihood = getattr(model, "likelihood", None)
    k = getattr(likelihood, "noise_per_pixel", 0) or 0
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"{type(likelihood).__name__}.noise_per_pixel must be a non-negative "
                         f"integer, got {k!r}.")
    if k:
        parameters = spec.decoder_parameters(model, tf.zeros((1, spec.latent_dim), "float32"))
        uniform = tf.fill((1,) + spec.event_shape + (int(k),), 0.5)
        shape = tuple(likelihood.draw_pixels(parameters, uniform).shape)
        if shape != (1,) + spec.event_shape:
            raise ValueError(f"{type(likelihood).__name__}.draw_pixels gave shape {shape} for "
                             f"one image; export expects (1,) + {spec.event_shape}.")
    return int(k)


def registered_name(registry, layer):
    """The name `layer`'s class is registered under in `registry`, else its class name."""
    try:
        return registry.name_of(layer)
    except ValueError:
        return type(layer).__name__


def prior_components(model):
    """(logits [C] or None, loc [C, d], scale [C, d]) of the model's prior, float32 numpy.

    Raises:
      NotImplementedError: the prior gives no mixture components.
      ValueError: the components have the wrong shapes.
    """
    prior = getattr(model, "prior", None)
    components = getattr(prior, "components", None)
    if components is None:
        raise NotImplementedError(
            f"Cannot export the sampler of {type(model).__name__}: its prior "
            f"{type(prior).__name__} has no components(); export supports priors that are "
            "mixtures of diagonal Gaussians (keras_vae.priors.Prior subclasses)."
        )
    try:
        logits, loc, scale = components(encode=getattr(model, "encode", None))
    except NotImplementedError as error:
        raise NotImplementedError(
            f"Cannot export the sampler: the prior {type(prior).__name__} does not give its "
            f"mixture components ({error})."
        ) from error
    loc = np.asarray(loc, "float32")
    scale = np.asarray(scale, "float32")
    d = int(model.latent_dim)
    if loc.ndim != 2 or loc.shape != scale.shape or loc.shape[1] != d:
        raise ValueError(f"The prior's components have loc {loc.shape} and scale {scale.shape}; "
                         f"expected [C, {d}] each.")
    if logits is not None:
        logits = np.asarray(logits, "float32").reshape(-1)
        if logits.shape[0] != loc.shape[0]:
            raise ValueError(f"The prior has {logits.shape[0]} logits for {loc.shape[0]} "
                             "components.")
        if logits.shape[0] == 1:
            logits = None
    return logits, loc, scale


def resolve_model(model):
    """Returns a model: `model` itself, or the model saved at a .keras path."""
    if isinstance(model, (str, os.PathLike)):
        path = pathlib.Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"No model file at {str(path)!r} (expected a .keras file).")
        import keras_vae  # noqa: F401  (registers the custom objects)

        return keras.models.load_model(path)
    return model


def prepare(model):
    """(model, spec) from a model or a .keras path."""
    model = resolve_model(model)
    return model, ExportSpec(model)


__all__ = ["ExportSpec", "condition_of", "class_components", "pixel_noise", "registered_name", "prior_components", "resolve_model", "prepare"]
