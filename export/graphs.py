r"""The exported computations: plain TensorFlow functions of a trained VAE, no TFP in them.

Every format is traced from the model's TFP-free hooks (`decoder_parameters`,
`encoder_parameters`) and from the prior's components in `spec.ExportSpec`,
baked in as constants, so a VAE subclass with other networks exports through
the same code (names are `contract`'s; contract 2: every input has a batch axis):

```none
decode(z [N, d][, label [N]])               -> {mean, *likelihood parameters}
encode(x [N, *event][, label [N]])          -> {loc, scale}
sample(seed [N], temperature [N][, label [N]]) -> {images [N, *event], z [N, d]}
    y      = one_hot(label, C)             (a class-conditional model; `condition` [N, c]
                                             for a model conditioned on a real vector)
    eps_i, u_i, pixels_i = prng.row_noise(seed_i)      (row i: a function of seed_i only)
    c_i    = label_i for p(z|y) = N(loc_y, scale_y^2), else the mixture component whose
             CDF interval holds u_i (mixture priors)
    z_i    = loc_c + temperature_i * scale_c * eps_i
    images = decode(z, y)[mean], or likelihood.draw_pixels(decode(z, y), pixels) when the
             likelihood has noise_per_pixel = k > 0 (pixels [N, *event, k] in (0, 1); interface 3)
```

One sampler graph for every runtime: the counter generator is integer ops that
TFLite (builtins), tf2onnx and onnxruntime(-web) all run, so a seed gives the same
z and images in TF Serving, TFLite, ONNX, Node and the browser (within float
rounding of log/cos, ~1e-6). The SavedModel checks the label range in the graph
(`tf.debugging`, an INVALID_ARGUMENT from TF Serving); TFLite and ONNX have no
assertion op, so their readers check it (`contract` names the input).
"""

import numpy as np

from keras_vae import posteriors
from keras_vae._backend import tf
from keras_vae.export import contract
from keras_vae.export import prng


def check_labels(spec, label):
    """Asserts 0 <= label < C in the graph (SavedModel only); returns the label."""
    message = (f"label must be an integer class in [0, {spec.num_classes - 1}] "
               f"(the model has {spec.num_classes} classes)")
    with tf.control_dependencies([
            tf.debugging.assert_greater_equal(label, tf.constant(0, label.dtype), message=message),
            tf.debugging.assert_less(label, tf.constant(spec.num_classes, label.dtype),
                                     message=message)]):
        return tf.identity(label)


def condition_vector(spec, condition, checked=True):
    """The condition vector [N, c] of the exported input: one_hot(label, C) or the vector."""
    if condition is None:
        return None
    if spec.num_classes:
        label = check_labels(spec, condition) if checked else condition
        return tf.one_hot(tf.cast(label, "int32"), spec.num_classes, dtype="float32")
    return tf.reshape(tf.cast(condition, "float32"), [-1, spec.condition_dim])


def _latents(spec, eps, uniform, temperature, label=None, vector=None):
    """z = loc_c + temperature * scale_c * eps (temperature [N] per row)."""
    temperature = tf.cast(temperature, "float32")[:, None]
    if spec.vector_prior is not None:  # p(z|c) = N(c M, diag(softplus(c R) + min_scale)^2)
        matrix, raw, min_scale = spec.vector_prior
        # Mul + ReduceSum, not MatMul: the int8 sampler quantises MatMul weights, not the prior.
        loc = tf.reduce_sum(vector[:, :, None] * tf.constant(matrix)[None], axis=1)
        raw_scale = tf.reduce_sum(vector[:, :, None] * tf.constant(raw)[None], axis=1)
        scale = tf.nn.softplus(raw_scale) + min_scale
        return posteriors.reparameterize(loc, temperature * scale, eps)
    if spec.class_conditional_prior:
        component = tf.cast(label, "int32")
        loc = tf.gather(tf.constant(spec.class_loc), component)
        scale = tf.gather(tf.constant(spec.class_scale), component)
        return posteriors.reparameterize(loc, temperature * scale, eps)
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


def pixel_count(spec):
    """P = prod(event) * k, the pixel uniforms per row."""
    return int(np.prod(spec.event_shape)) * spec.noise_per_pixel


def row_noise(spec, seed):
    """(eps [N, d], component uniform [N] or None, pixel uniforms [N, *event, k] or None)."""
    mixture = spec.prior_logits is not None
    eps, uniform, pixels = prng.row_noise(seed, spec.latent_dim, pixel_count(spec), mixture)
    if pixels is not None:
        pixels = tf.reshape(pixels, [-1, *spec.event_shape, spec.noise_per_pixel])
    return eps, uniform, pixels


def _sample(model, spec, seed, temperature, condition, checked):
    if spec.num_classes and checked:
        condition = check_labels(spec, condition)  # before the prior's gather reads it
    vector = condition_vector(spec, condition, checked=False)
    eps, uniform, pixels = row_noise(spec, seed)
    label = condition if spec.class_conditional_prior else None
    z = _latents(spec, eps, uniform, temperature, label, vector)
    parameters = spec.decoder_parameters(model, z, vector)
    return {contract.IMAGES: images_from(model, spec, parameters, pixels), contract.Z: z}


def decode_function(model, spec, checked=True):
    """(z [N, d][, condition]) -> the decoder's outputs: 'mean' and the likelihood's parameters."""

    def decode(z, condition=None):
        outputs = spec.decoder_parameters(model, z, condition_vector(spec, condition, checked))
        return {key: tf.cast(value, "float32") for key, value in outputs.items()}

    return _with_condition(spec, decode, (contract.Z,))


def encode_function(model, spec):
    """(x [N, *event][, condition]) -> {'loc', 'scale'} of q(z|x[, y])."""

    def encode(x, condition=None):
        loc, scale = spec.encoder_parameters(model, tf.cast(x, "float32"),
                                             condition_vector(spec, condition))
        return {contract.LOC: tf.cast(loc, "float32"), contract.SCALE: tf.cast(scale, "float32")}

    return _with_condition(spec, encode, (contract.X,))


def sample_function(model, spec, checked=True):
    """(seed int64 [N], temperature float32 [N][, label]) -> {'images', 'z'}; row i pure in
    (seed_i, temperature_i, label_i). `checked`: assert the label range in the graph."""

    def sample(seed, temperature, condition=None):
        return _sample(model, spec, seed, temperature, condition, checked)

    return _with_condition(spec, sample, (contract.SEED, contract.TEMPERATURE))


def onnx_sampler_function(model, spec):
    """The ONNX sampler: `sample_function` without the in-graph label check (no ONNX op)."""
    return sample_function(model, spec, checked=False)


def _with_condition(spec, fn, names):
    """`fn` with exactly the positional inputs `names` (+ the condition input if conditional)."""
    if spec.condition_dim:
        return lambda *args: fn(*args[:len(names)], condition=args[len(names)])
    return lambda *args: fn(*args)


def _condition_spec(spec):
    if spec.num_classes:
        return [tf.TensorSpec([None], tf.int64, name=contract.LABEL)]
    if spec.condition_dim:
        return [tf.TensorSpec([None, *spec.condition_shape], tf.float32,
                              name=contract.CONDITION)]
    return []


def signatures(spec):
    """The input signatures of the SavedModel endpoints, keyed by endpoint name."""
    extra = _condition_spec(spec)
    seed, temperature = contract.INPUTS[contract.SAMPLE]
    return {
        contract.DECODE: [tf.TensorSpec([None, spec.latent_dim], tf.float32, name=contract.Z)]
        + extra,
        contract.SAMPLE: [tf.TensorSpec([None], tf.int64, name=seed),
                          tf.TensorSpec([None], tf.float32, name=temperature)] + extra,
        contract.ENCODE: [tf.TensorSpec([None, *spec.event_shape], tf.float32, name=contract.X)]
        + extra,
    }


def onnx_signatures(spec):
    """The input signatures of the ONNX decoder and sampler, keyed by role."""
    sm = signatures(spec)
    return {contract.ONNX_DECODER: sm[contract.DECODE], contract.ONNX_SAMPLER: sm[contract.SAMPLE]}


__all__ = ["check_labels", "condition_vector", "images_from", "pixel_count", "row_noise",
           "decode_function", "encode_function", "sample_function", "onnx_sampler_function",
           "signatures", "onnx_signatures"]
