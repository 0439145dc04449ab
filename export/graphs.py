r"""The exported computations: plain TensorFlow functions of a trained VAE, no TFP in them.

Every format is traced from the model's TFP-free hooks (`decoder_parameters`,
`encoder_parameters`) and from the prior's components in `spec.ExportSpec`,
baked in as constants, so a VAE subclass with other networks exports through
the same code (names are `contract`'s):

```none
decode(z [N, d])                       -> {mean, *likelihood parameters}
encode(x [N, *event])                  -> {loc, scale}
sample(num_samples, temperature, seed) -> {images [n, *event], z [n, d]}
    c ~ Categorical(pi)                 (mixture priors only; inverse CDF of a uniform)
    z = loc_c + temperature * scale_c * eps,  eps ~ N(0, I)
    images = decode(z)[mean], or likelihood.draw_pixels(decode(z), u) when the likelihood
             has noise_per_pixel = k > 0, u ~ U(0, 1) [n, *event, k]  (interface 3)
```

Two noise sources, one per runtime family:

* SavedModel / TFLite (`sample_function`): `prng.counter_normal`, TFLite
  builtins only, so a seed gives the same z on both.
* ONNX (`onnx_sampler_function`): `tf.random.normal`, which tf2onnx turns into
  `RandomNormalLike`; the `seed` attribute tf2onnx writes is stripped later
  (`onnx_export.strip_random_seeds`), so onnxruntime's own seeding applies.
"""

import numpy as np

from keras_vae import posteriors
from keras_vae._backend import tf
from keras_vae.export import contract
from keras_vae.export import prng

#: The counter generator's stream of the pixel uniforms (1, 2: eps; 3: the mixture component).
PIXEL_STREAM = 4


def _latents(spec, eps, uniform, temperature):
    """z = loc_c + temperature * scale_c * eps, c picked by inverse CDF of `uniform` [n]."""
    temperature = tf.cast(temperature, "float32")
    if spec.standard_normal:
        return temperature * eps
    if spec.prior_logits is None:
        loc, scale = spec.prior_loc[0], spec.prior_scale[0]
        return posteriors.reparameterize(tf.constant(loc), temperature * tf.constant(scale), eps)
    probs = np.exp(spec.prior_logits - spec.prior_logits.max())
    cdf = np.cumsum(probs / probs.sum())[:-1].astype("float32")  # C - 1 inner edges
    component = tf.reduce_sum(tf.cast(uniform[:, None] > tf.constant(cdf)[None, :], "int32"), 1)
    loc = tf.gather(tf.constant(spec.prior_loc), component)
    scale = tf.gather(tf.constant(spec.prior_scale), component)
    return posteriors.reparameterize(loc, temperature * scale, eps)


def images_from(model, spec, parameters, uniform=None):
    """The sampler's images: the likelihood's `draw_pixels(parameters, uniform)` when it draws
    pixels (`spec.noise_per_pixel` = k > 0, uniform [N, *event, k] in (0, 1)), else the mean."""
    if spec.noise_per_pixel:
        return tf.cast(model.likelihood.draw_pixels(parameters, uniform), "float32")
    return tf.cast(parameters[contract.MEAN], "float32")


def pixel_shape(spec, n):
    """[n, *event, k]: the shape of the pixel uniforms of n images (an int64 tensor)."""
    return tf.stack([tf.cast(n, "int64"), *(tf.constant(s, "int64") for s in spec.event_shape),
                     tf.constant(spec.noise_per_pixel, "int64")])


def counter_pixels(spec, n, seed):
    """The pixel uniforms [n, *event, k] of `sample`: stream 4 of `prng.counter_uniform`."""
    shape = pixel_shape(spec, n)
    return tf.reshape(prng.counter_uniform(tf.reduce_prod(shape), seed, stream=PIXEL_STREAM),
                      shape)


def _images_and_z(model, spec, z, uniform=None):
    images = images_from(model, spec, model.decoder_parameters(z), uniform)
    return {contract.IMAGES: images, contract.Z: z}


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
        return {contract.LOC: tf.cast(loc, "float32"), contract.SCALE: tf.cast(scale, "float32")}

    return encode


def sample_function(model, spec):
    """(num_samples int32, temperature float32, seed int64) -> {'images', 'z'}; pure in seed."""

    def sample(num_samples, temperature, seed):
        n = tf.cast(num_samples, "int64")
        shape = tf.stack([n, tf.constant(spec.latent_dim, "int64")])
        eps = prng.counter_normal(shape, seed)
        uniform = prng.counter_uniform(n, seed, stream=3) if spec.prior_logits is not None else None
        pixels = counter_pixels(spec, n, seed) if spec.noise_per_pixel else None
        return _images_and_z(model, spec, _latents(spec, eps, uniform, temperature), pixels)

    return sample


def onnx_sampler_function(model, spec):
    """(num_samples int64, temperature float32) -> {'images', 'z'}, noise from tf.random.normal.

    One random op only: for a mixture prior the component's uniform is the
    normal CDF of an extra normal column (onnxruntime seeds every unseeded
    random op of a session alike, so two ops would draw correlated streams).
    """
    d = spec.latent_dim
    extra = 0 if spec.prior_logits is None else 1
    pixels = int(np.prod(spec.event_shape)) * spec.noise_per_pixel

    def sampler(num_samples, temperature):
        n = tf.cast(num_samples, "int64")
        noise = tf.random.normal(tf.stack([n, tf.constant(d + extra + pixels, "int64")]))
        eps = noise[:, :d]
        uniform = _normal_cdf(noise[:, d]) if extra else None
        pixel_uniform = None
        if pixels:
            pixel_uniform = tf.reshape(_normal_cdf(noise[:, d + extra:]), pixel_shape(spec, n))
        return _images_and_z(model, spec, _latents(spec, eps, uniform, temperature),
                             pixel_uniform)

    return sampler


def _normal_cdf(x):
    """Phi(x), kept inside (0, 1) in float32: the uniform of a standard normal draw."""
    u = 0.5 * (1.0 + tf.math.erf(x / np.sqrt(2.0)))
    return tf.clip_by_value(u, 1e-7, 1.0 - 1e-7)


def signatures(spec):
    """The input signatures of the SavedModel endpoints, keyed by endpoint name."""
    num_samples, temperature, seed = contract.INPUTS[contract.SAMPLE]
    return {
        contract.DECODE: [tf.TensorSpec([None, spec.latent_dim], tf.float32, name=contract.Z)],
        contract.SAMPLE: [
            tf.TensorSpec([], tf.int32, name=num_samples),
            tf.TensorSpec([], tf.float32, name=temperature),
            tf.TensorSpec([], tf.int64, name=seed),
        ],
        contract.ENCODE: [tf.TensorSpec([None, *spec.event_shape], tf.float32, name=contract.X)],
    }


def onnx_signatures(spec):
    """The input signatures of the ONNX decoder and sampler, keyed by role."""
    num_samples, temperature = contract.ONNX_SAMPLER_INPUTS
    return {
        contract.ONNX_DECODER: [tf.TensorSpec([None, spec.latent_dim], tf.float32,
                                              name=contract.Z)],
        contract.ONNX_SAMPLER: [tf.TensorSpec([], tf.int64, name=num_samples),
                                tf.TensorSpec([], tf.float32, name=temperature)],
    }


__all__ = ["PIXEL_STREAM", "images_from", "pixel_shape", "counter_pixels", "decode_function", "encode_function", "sample_function", "onnx_sampler_function",
           "signatures", "onnx_signatures"]
