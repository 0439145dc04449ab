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
        self.likelihood = registered_name(names.LIKELIHOODS, getattr(model, "likelihood", None))
        self.prior = registered_name(names.PRIORS, getattr(model, "prior", None))
        self.prior_logits, self.prior_loc, self.prior_scale = prior_components(model)
        self.decoder_outputs = self._decoder_outputs(model)
        self.noise_per_pixel = pixel_noise(model, self.event_shape, self.latent_dim)

    def _decoder_outputs(self, model):
        outputs = model.decoder_parameters(tf.zeros((1, self.latent_dim), "float32"))
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
        """C, the number of Gaussians in the prior."""
        return int(self.prior_loc.shape[0])

    @property
    def standard_normal(self):
        """True if the prior is N(0, I): z = temperature * eps exactly."""
        return (self.prior_logits is None and not np.any(self.prior_loc)
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
        }


def pixel_noise(model, event_shape, latent_dim):
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
        parameters = model.decoder_parameters(tf.zeros((1, latent_dim), "float32"))
        uniform = tf.fill((1,) + tuple(event_shape) + (int(k),), 0.5)
        shape = tuple(likelihood.draw_pixels(parameters, uniform).shape)
        if shape != (1,) + tuple(event_shape):
            raise ValueError(f"{type(likelihood).__name__}.draw_pixels gave shape {shape} for "
                             f"one image; export expects (1,) + {tuple(event_shape)}.")
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


__all__ = ["ExportSpec", "pixel_noise", "registered_name", "prior_components", "resolve_model", "prepare"]
