r"""The exported computations: plain TensorFlow functions of a trained VAE, no TFP in them.

Every format is traced from the model's TFP-free hooks (`decoder_parameters`,
`encoder_parameters`) and from the prior's `components()`, read once at export
time and baked in as constants, so a VAE subclass with other networks exports
through the same code:

```none
decode(z [N, d])                      -> {'mean', *likelihood parameters}
encode(x [N, *event])                 -> {'loc', 'scale'}
sample(num_samples, temperature, seed) -> {'images' [n, *event], 'z' [n, d]}
    c ~ Categorical(pi)                 (mixture priors only; inverse CDF of a uniform)
    z = loc_c + temperature * scale_c * eps,  eps ~ N(0, I)
    images = decode(z)['mean']
```

Two noise sources, one per runtime family:

* SavedModel / TFLite (`counter_normal`): a counter-based generator built from
  integer arithmetic modulo the prime p = 2^31 - 1 (a keyed MiMC-style
  permutation, x -> x^5 being a bijection mod p) and the Box-Muller transform.
  TF's stateless random ops would need TFLite's Flex delegate; these ops are
  all TFLite builtins, so the same `seed` gives the same z in TF Serving and in
  TFLite (up to float rounding in log/cos, ~1e-6). Seeds are taken modulo p.
* ONNX (`onnx_sampler_function`): `tf.random.normal`, which tf2onnx turns into
  `RandomNormalLike`; the `seed` attribute tf2onnx writes is stripped later
  (`onnx_export.strip_random_seeds`), so onnxruntime's own seeding applies.
"""

import numpy as np

from keras_vae import names
from keras_vae import priors as priors_lib
from keras_vae._backend import tf

#: The prime modulus of the counter-based generator (2^31 - 1).
PRIME = 2147483647
# (round constant, multiplier) pairs of the 6-round keyed permutation.
_ROUNDS = (
    (1013904223, 1664525),
    (22695477, 134775813),
    (1103515245, 12345),
    (214013, 2531011),
    (69069, 48271),
    (2147483587, 16807),
)


class ExportSpec:
    """What the exported graphs need to know about a model, read once from it.

    Attributes:
      latent_dim: int d.
      event_shape: tuple, the shape of one image.
      likelihood: a short name ('bernoulli', 'gaussian', ...) or the class name.
      prior: a short name ('normal', 'mixture', 'vamp') or the class name.
      prior_logits: float32 [C] or None (a single Gaussian).
      prior_loc, prior_scale: float32 [C, d].
      decoder_outputs: sorted names of the decoder's outputs.
    """

    def __init__(self, model):
        for attr in ("decoder_parameters", "encoder_parameters", "latent_dim", "event_shape"):
            if not hasattr(model, attr):
                raise TypeError(
                    f"Cannot export {type(model).__name__}: it has no `{attr}`. Export needs "
                    "a keras_vae.VAE (or a subclass) with the TFP-free hooks "
                    "decoder_parameters(z) and encoder_parameters(x)."
                )
        self.latent_dim = int(model.latent_dim)
        self.event_shape = tuple(int(s) for s in model.event_shape)
        self.likelihood = likelihood_name(getattr(model, "likelihood", None))
        self.prior = prior_name(getattr(model, "prior", None))
        self.prior_logits, self.prior_loc, self.prior_scale = _prior_components(model)
        z = tf.zeros((1, self.latent_dim), "float32")
        outputs = model.decoder_parameters(z)
        if "mean" not in outputs:
            raise ValueError(
                f"{type(model).__name__}.decoder_parameters returned {sorted(outputs)}; "
                "export needs a 'mean' entry (the image a decoder draws for z)."
            )
        for key, value in outputs.items():
            shape = tuple(value.shape)
            if shape != (1,) + self.event_shape:
                raise ValueError(
                    f"decoder_parameters(z)['{key}'] has shape {shape} for z of shape "
                    f"(1, {self.latent_dim}); export expects (1,) + {self.event_shape}."
                )
        self.decoder_outputs = sorted(outputs)

    @property
    def num_components(self):
        return int(self.prior_loc.shape[0])

    def describe(self):
        """The JSON-ready description written into the manifest."""
        return {
            "latent_dim": self.latent_dim,
            "event_shape": list(self.event_shape),
            "likelihood": self.likelihood,
            "prior": self.prior,
            "prior_components": self.num_components,
            "decoder_outputs": list(self.decoder_outputs),
        }


def likelihood_name(likelihood):
    """The registered name of a likelihood layer (`names.LIKELIHOODS`), else its class name."""
    return _registered_name(names.LIKELIHOODS, likelihood)


def prior_name(prior):
    """The registered name of a prior layer (`names.PRIORS`), else its class name."""
    return _registered_name(names.PRIORS, prior)


def _registered_name(registry, layer):
    try:
        return registry.name_of(layer)
    except ValueError:
        return type(layer).__name__


def _prior_components(model):
    """(logits [C] or None, loc [C, d], scale [C, d]) as float32 numpy arrays."""
    prior = getattr(model, "prior", None)
    if isinstance(prior, priors_lib.StandardNormalPrior):
        d = int(model.latent_dim)
        return None, np.zeros((1, d), "float32"), np.ones((1, d), "float32")
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
    if loc.ndim != 2 or loc.shape != scale.shape or loc.shape[1] != int(model.latent_dim):
        raise ValueError(
            f"The prior's components have loc {loc.shape} and scale {scale.shape}; "
            f"expected [C, {model.latent_dim}] each."
        )
    if logits is not None:
        logits = np.asarray(logits, "float32").reshape(-1)
        if logits.shape[0] != loc.shape[0]:
            raise ValueError(f"The prior has {logits.shape[0]} logits for {loc.shape[0]} components.")
        if logits.shape[0] == 1:
            logits = None
    return logits, loc, scale


# --------------------------------------------------------------------- noise


def _permute(x, key):
    """A keyed permutation of int64 values in [0, p): 6 rounds of x -> (a (x + k + c))^5 mod p.

    Every intermediate product stays below 2^62, so it is exact in int64 on any
    runtime (TF, TFLite).
    """
    for constant, multiplier in _ROUNDS:
        x = tf.math.floormod(x + key + constant, PRIME)
        x2 = tf.math.floormod(x * x, PRIME)
        x4 = tf.math.floormod(x2 * x2, PRIME)
        x = tf.math.floormod(x4 * x, PRIME)
        x = tf.math.floormod(x * multiplier, PRIME)
    return x


def counter_uniform(count, seed, stream=0):
    """`count` uniforms in (0, 1] (float32) from a seed: a pure function of (seed, stream, index)."""
    key = tf.math.floormod(tf.cast(seed, "int64") + stream * 7919, PRIME)
    index = tf.range(tf.cast(count, "int64"), dtype="int64")
    bits = _permute(index, key)
    return (tf.cast(bits, "float32") + 0.5) / float(PRIME)


def counter_normal(shape, seed):
    """Standard normal draws of `shape` [n, d] (int64 tensor) by Box-Muller from `counter_uniform`."""
    count = tf.reduce_prod(shape)
    u1 = counter_uniform(count, seed, stream=1)
    u2 = counter_uniform(count, seed, stream=2)
    eps = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos((2.0 * np.pi) * u2)
    return tf.reshape(eps, shape)


def _latents(spec, eps, uniform, temperature):
    """z = loc_c + temperature * scale_c * eps, c picked by inverse CDF of `uniform` [n]."""
    temperature = tf.cast(temperature, "float32")
    if spec.prior_logits is None:
        loc, scale = spec.prior_loc[0], spec.prior_scale[0]
        if spec.prior == "normal":
            return temperature * eps
        return tf.constant(loc) + temperature * tf.constant(scale) * eps
    probs = np.exp(spec.prior_logits - spec.prior_logits.max())
    cdf = np.cumsum(probs / probs.sum())[:-1].astype("float32")  # C - 1 inner edges
    component = tf.reduce_sum(tf.cast(uniform[:, None] > tf.constant(cdf)[None, :], "int32"), 1)
    loc = tf.gather(tf.constant(spec.prior_loc), component)
    scale = tf.gather(tf.constant(spec.prior_scale), component)
    return loc + temperature * scale * eps


# --------------------------------------------------------------------- functions


def decode_function(model):
    """z [N, d] -> the decoder's outputs: a dict with 'mean' and the likelihood's parameters."""

    def decode(z):
        outputs = model.decoder_parameters(z)
        return {key: tf.cast(value, "float32") for key, value in outputs.items()}

    return decode


def encode_function(model):
    """x [N, *event] -> {'loc', 'scale'} of q(z|x)."""

    def encode(x):
        loc, scale = model.encoder_parameters(x)
        return {"loc": tf.cast(loc, "float32"), "scale": tf.cast(scale, "float32")}

    return encode


def sample_function(model, spec):
    """(num_samples int32, temperature float32, seed int64) -> {'images', 'z'}; deterministic in seed."""

    def sample(num_samples, temperature, seed):
        n = tf.cast(num_samples, "int64")
        shape = tf.stack([n, tf.constant(spec.latent_dim, "int64")])
        eps = counter_normal(shape, seed)
        uniform = counter_uniform(n, seed, stream=3) if spec.prior_logits is not None else None
        z = _latents(spec, eps, uniform, temperature)
        images = tf.cast(model.decoder_parameters(z)["mean"], "float32")
        return {"images": images, "z": z}

    return sample


def onnx_sampler_function(model, spec):
    """(num_samples int64, temperature float32) -> {'images', 'z'}, noise from tf.random.normal.

    One random op only: for a mixture prior the component's uniform is the
    normal CDF of an extra normal column (onnxruntime seeds every unseeded
    random op of a session alike, so two ops would draw correlated streams).
    """
    extra = 0 if spec.prior_logits is None else 1

    def sampler(num_samples, temperature):
        n = tf.cast(num_samples, "int64")
        noise = tf.random.normal(tf.stack([n, tf.constant(spec.latent_dim + extra, "int64")]))
        eps = noise[:, : spec.latent_dim] if extra else noise
        uniform = None
        if extra:
            uniform = 0.5 * (1.0 + tf.math.erf(noise[:, spec.latent_dim] / np.sqrt(2.0)))
        z = _latents(spec, eps, uniform, temperature)
        images = tf.cast(model.decoder_parameters(z)["mean"], "float32")
        return {"images": images, "z": z}

    return sampler


def signatures(spec):
    """The input signatures of the SavedModel endpoints, keyed by endpoint name."""
    return {
        "decode": [tf.TensorSpec([None, spec.latent_dim], tf.float32, name="z")],
        "sample": [
            tf.TensorSpec([], tf.int32, name="num_samples"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ],
        "encode": [tf.TensorSpec([None, *spec.event_shape], tf.float32, name="x")],
    }
