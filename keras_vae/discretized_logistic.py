r"""8-bit images: the discretized logistic mixture of PixelCNN++ as p(x|z), reported in bits/dim.

Pixels are integers k in {0, ..., 255}. The distribution works in the centred scale
of Salimans et al. (2017), y = k / 127.5 - 1 in [-1, 1], where bin k is
[y - 1/255, y + 1/255] and the edge bins take the tails:

```none
p(x) = sum_m pi_m prod_c P_cm(x_c)                        one pixel, channels c, M components
P_cm(k) = sigmoid((y + 1/255 - mu_cm) / s_cm) - sigmoid((y - 1/255 - mu_cm) / s_cm)
P_cm(0)   = sigmoid((-1 + 1/255 - mu_cm) / s_cm)          (the CDF from -inf)
P_cm(255) = 1 - sigmoid((1 - 1/255 - mu_cm) / s_cm)       (the CDF to +inf)
log(sigmoid(a) - sigmoid(b)) = log_sigmoid(a) + log_sigmoid(-b) + log(1 - exp(b - a))
```

The last identity is exact in float32 for any a > b, which removes the cancellation
PixelCNN++ guarded with its mid-bin fallback; the fallback (the density at the bin
centre times the bin width 2/255) is still taken where 1 - exp(b - a) underflows.
The mixture component is shared by the channels of a pixel; the channels are
independent given it (no linear autoregressive coupling between channels: this is
PixelCNN++ without its coefficients). Pixels are independent given z (`tfd.Independent`).

Sampling (`draw`) is two uniforms per pixel and channel: the component by the inverse
CDF of the softmax (the first uniform of channel 0), the logistic by its inverse CDF,
y = mu + s (log u - log(1 - u)), then k = clip(round(127.5 (y + 1)), 0, 255).

The decoder gives, per pixel, either C values (any preset: the location in pixel
units, one logistic, a learned per-pixel scale) or M (1 + 2C) values (the 'conv8'
preset: M mixture logits, then C x M locations and C x M log-scales, in the centred
scale). The encoder is fed what the data are (0..255); 'conv8' rescales to [-1, 1]
in its first layer.

Example:

```python
import keras_vae
ds = keras_vae.data.load("fashion_mnist", likelihood="discretized_logistic")
model = keras_vae.VAE(encoder="conv8", likelihood="discretized_logistic")
model.compile(optimizer="adam")
model.fit(ds.x_train, epochs=1, batch_size=100)
```

References:
  T. Salimans, A. Karpathy, X. Chen, D. P. Kingma. PixelCNN++: Improving the PixelCNN
  with discretized logistic mixture likelihood and other modifications. ICLR 2017.
"""

import math

import numpy as np

from keras_vae import likelihoods, names, validation
from keras_vae._backend import keras, tf, tfd, tfp

#: The number of pixel values, {0, ..., 255}.
NUM_BINS = 256
#: Half a bin in the centred scale [-1, 1].
HALF_BIN = 1.0 / 255.0
#: log-scales are clipped below here (as in PixelCNN++).
MIN_LOG_SCALE = -7.0


def to_centred(pixels):
    """k in {0..255} -> y = k / 127.5 - 1 in [-1, 1] (float32)."""
    return tf.cast(pixels, "float32") / 127.5 - 1.0


def to_pixels(centred):
    """y -> clip(round(127.5 (y + 1)), 0, 255): the bin of a continuous value (float32)."""
    return tf.clip_by_value(tf.round((centred + 1.0) * 127.5), 0.0, 255.0)


def _log1mexp(d):
    """log(1 - exp(d)) for d < 0, accurate on both sides of -log 2."""
    return tf.where(d > -math.log(2.0), tf.math.log(-tf.math.expm1(d)),
                    tf.math.log1p(-tf.exp(tf.minimum(d, -math.log(2.0)))))


def component_log_probs(pixels, locs, log_scales):
    """log P_cm(x_c) of every channel and component: pixels [..., C], locs [..., C, M].

    Returns:
      float32 [..., C, M].
    """
    k = tf.cast(pixels, "float32")[..., None]
    y = k / 127.5 - 1.0
    log_scales = tf.maximum(log_scales, MIN_LOG_SCALE)
    inv_s = tf.exp(-log_scales)
    centred = y - locs
    # Edges from the half-integers k +- 1/2, so adjacent bins share them bit for bit.
    upper = inv_s * (((k + 0.5) / 127.5 - 1.0) - locs)
    lower = inv_s * (((k - 0.5) / 127.5 - 1.0) - locs)
    log_cdf_upper = tf.math.log_sigmoid(upper)            # bin 0: the CDF from -inf
    log_sf_lower = tf.math.log_sigmoid(-lower)            # bin 255: the CDF to +inf
    gap = lower - upper                                   # -(2/255) / s < 0
    resolved = gap < -1e-30                               # else 1 - exp(gap) underflows
    inner = log_cdf_upper + log_sf_lower + _log1mexp(tf.where(resolved, gap, -1.0))
    mid = inv_s * centred                                 # PixelCNN++'s mid-bin fallback
    log_mid = mid - log_scales - 2.0 * tf.nn.softplus(mid) + math.log(2 * HALF_BIN)
    inner = tf.where(resolved, inner, log_mid)
    return tf.where(y < -1.0 + HALF_BIN, log_cdf_upper,
                    tf.where(y > 1.0 - HALF_BIN, log_sf_lower, inner))


def pixel_log_probs(pixels, logits, locs, log_scales):
    """log p(x) per pixel: logsumexp_m [log pi_m + sum_c log P_cm(x_c)], [...] (float32)."""
    log_pi = tf.nn.log_softmax(logits, axis=-1)
    joint = tf.reduce_sum(component_log_probs(pixels, locs, log_scales), axis=-2)
    return tf.reduce_logsumexp(log_pi + joint, axis=-1)


def pixel_means(logits, locs, log_scales, block=32):
    """E[x_c] per pixel and channel in pixel units: sum_m pi_m sum_k P(X_cm >= k), [..., C].

    ```none
    E[k] = sum_{k=1}^{255} P(k' >= k) = sum_{k=1}^{255} (1 - sigmoid((y_k - 1/255 - mu) / s))
    ```

    Exact; the 255 thresholds are summed in blocks of `block` to bound the memory,
    on 2-D tensors per component (TFLite slices at most 5-D tensors).
    """
    pi = tf.nn.softmax(logits, axis=-1)
    thresholds = (np.arange(1, NUM_BINS, dtype="float32") - 0.5) / 127.5 - 1.0
    mean = tf.zeros_like(locs[..., 0])
    for m in range(int(locs.shape[-1])):
        loc = tf.reshape(locs[..., m], [-1, 1])
        inv_s = tf.reshape(tf.exp(-tf.maximum(log_scales[..., m], MIN_LOG_SCALE)), [-1, 1])
        total = tf.zeros_like(loc[:, 0])
        for start in range(0, len(thresholds), block):
            t = tf.constant(thresholds[None, start:start + block])
            total += tf.reduce_sum(tf.sigmoid((loc - t) * inv_s), axis=-1)
        mean += pi[..., m:m + 1] * tf.reshape(total, tf.shape(mean))
    return mean


def draw(logits, locs, log_scales, uniform):
    """Pixels from two uniforms per pixel and channel, plain TF ops (no TFP).

    Args:
      logits: [..., M] mixture logits per pixel.
      locs, log_scales: [..., C, M] in the centred scale.
      uniform: [..., C, 2] in (0, 1): [..., 0, 0] picks the component, [..., c, 1]
        the logistic draw of channel c.

    Returns:
      float32 [..., C] integers in 0..255.
    """
    probs = tf.nn.softmax(logits, axis=-1)
    cdf = tf.math.cumsum(probs, axis=-1)
    num = tf.shape(logits)[-1]
    index = tf.reduce_sum(tf.cast(cdf < uniform[..., :1, 0], "int32"), axis=-1)
    one_hot = tf.one_hot(tf.minimum(index, num - 1), num, dtype="float32")[..., None, :]
    loc = tf.reduce_sum(one_hot * locs, axis=-1)
    log_scale = tf.reduce_sum(one_hot * tf.maximum(log_scales, MIN_LOG_SCALE), axis=-1)
    u = tf.clip_by_value(uniform[..., 1], 1e-7, 1.0 - 1e-7)
    # log(1 - u), not log1p(-u): ONNX has no Log1p (the difference is below a grey level).
    return to_pixels(loc + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log(1.0 - u)))


class DiscretizedLogisticMixture(tfd.Distribution):
    r"""One pixel's channels [C] in {0..255}: a mixture of M discretized logistics.

    Batch shape [...] (e.g. [N, H, W]); event shape [C]. Wrap it in
    `tfd.Independent(..., reinterpreted_batch_ndims=2)` for images.

    Args:
      logits: [..., M] mixture logits.
      locs: [..., C, M] locations in the centred scale [-1, 1].
      log_scales: [..., C, M] log-scales in the centred scale (clipped at -7).
    """

    @tf.autograph.experimental.do_not_convert
    def __init__(self, logits, locs, log_scales, validate_args=False, allow_nan_stats=True,
                 name="DiscretizedLogisticMixture"):
        parameters = {"logits": logits, "locs": locs, "log_scales": log_scales,
                      "validate_args": validate_args, "allow_nan_stats": allow_nan_stats,
                      "name": name}
        with tf.name_scope(name) as name:
            self._logits = tf.convert_to_tensor(logits, "float32")
            self._locs = tf.convert_to_tensor(locs, "float32")
            self._log_scales = tf.convert_to_tensor(log_scales, "float32")
            super().__init__(dtype=tf.float32,
                             reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {"logits": tfp.util.ParameterProperties(event_ndims=1),
                "locs": tfp.util.ParameterProperties(event_ndims=2),
                "log_scales": tfp.util.ParameterProperties(event_ndims=2)}

    @property
    def logits(self):
        return self._logits

    @property
    def locs(self):
        return self._locs

    @property
    def log_scales(self):
        return self._log_scales

    def _event_shape(self):
        return self._locs.shape[-2:-1]

    def _event_shape_tensor(self):
        return tf.shape(self._locs)[-2:-1]

    def _log_prob(self, x):
        return pixel_log_probs(x, self._logits, self._locs, self._log_scales)

    def _mean(self):
        return pixel_means(self._logits, self._locs, self._log_scales)

    def _sample_n(self, n, seed=None):
        seed = tfp.random.sanitize_seed(seed, salt="DiscretizedLogisticMixture")
        shape = tf.concat([[n], self.batch_shape_tensor(), self.event_shape_tensor(), [2]], 0)
        uniform = tf.random.stateless_uniform(shape, seed=seed, minval=1e-7, maxval=1.0 - 1e-7)
        batch = tf.broadcast_to(self._locs, tf.concat(
            [self.batch_shape_tensor(), tf.shape(self._locs)[-2:]], 0))
        logits = tf.broadcast_to(self._logits, tf.shape(batch[..., 0, :]))
        return draw(logits, batch, tf.broadcast_to(self._log_scales, tf.shape(batch)), uniform)

    def _default_event_space_bijector(self):
        return None


def flat_parameters(logits, locs, log_scales):
    """The mixture as a dict of image-shaped tensors [..., H, W, C], as exporters want them.

    ```none
    logit_m      [..., H, W, C]   the logit of component m (the same on every channel)
    loc_m        [..., H, W, C]   its location, centred scale [-1, 1]
    log_scale_m  [..., H, W, C]   its log-scale (clipped at MIN_LOG_SCALE where used)
    ```
    """
    out = {}
    for m in range(int(logits.shape[-1])):
        out[f"logit_{m}"] = tf.broadcast_to(logits[..., m:m + 1], tf.shape(locs[..., m]))
        out[f"loc_{m}"] = locs[..., m]
        out[f"log_scale_{m}"] = log_scales[..., m]
    return out


def stacked_parameters(parameters):
    """(logits [..., H, W, M], locs, log_scales [..., H, W, C, M]) of `flat_parameters`' dict."""
    m = sum(1 for key in parameters if key.startswith("logit_"))
    if m == 0:
        raise ValueError(f"No mixture parameters 'logit_0', ... in {sorted(parameters)}.")
    stack = [[tf.cast(parameters[f"{name}_{i}"], "float32") for i in range(m)]
             for name in ("logit", "loc", "log_scale")]
    return (tf.stack(stack[0], -1)[..., 0, :], tf.stack(stack[1], -1), tf.stack(stack[2], -1))


def parameter_channels(channels, num_components):
    """The decoder's output channels of the mixture: M (1 + 2C)."""
    return int(num_components) * (1 + 2 * int(channels))


@keras.saving.register_keras_serializable(package="keras_vae")
@names.LIKELIHOODS.register("discretized_logistic",
                            description="8-bit images: mixture of discretized logistics "
                                        "(PixelCNN++), pixels 0..255")
class DiscretizedLogisticLikelihood(likelihoods.Likelihood):
    r"""p(x|z) for 8-bit images [H, W, C] in {0..255}: M discretized logistics per pixel.

    ```none
    decoder output o [N, H, W, C]          one logistic: mu = o / 127.5 - 1 (o in pixel
                                           units), log s = v (a learned [H, W, C] weight)
    decoder output o [N, H, W, M (1 + 2C)] logits o[..., :M], mu o[..., M:M + CM] (C x M),
                                           log s = o[..., M + CM:] (C x M) + v
    ```

    Args:
      event_shape: (H, W, C), the image shape.
      num_components: M, or None to read it from the decoder's output channels.
      init_scale: the initial per-pixel scale exp(v), in the centred scale (0.1 is
        about 13 grey levels).
    """

    support = (0.0, 255.0)
    integer_valued = True
    noise_per_pixel = 2

    def __init__(self, event_shape, num_components=None, init_scale=0.1, **kwargs):
        super().__init__(event_shape, **kwargs)
        if len(self.event_shape) != 3:
            raise ValueError("The discretized_logistic likelihood needs images of shape "
                             f"(height, width, channels), got event_shape {self.event_shape}.")
        if num_components is not None and int(num_components) < 1:
            raise ValueError(f"num_components must be >= 1, got {num_components!r}.")
        if float(init_scale) <= 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale!r}.")
        self.num_components = None if num_components is None else int(num_components)
        self.init_scale = float(init_scale)

    def build(self, input_shape=None):
        self.log_scale_offset = self.add_weight(
            shape=self.event_shape, name="log_scale_offset",
            initializer=keras.initializers.Constant(math.log(self.init_scale)))
        self.built = True

    def split(self, outputs):
        """(logits [..., H, W, M], locs and log_scales [..., H, W, C, M]) of the decoder output."""
        outputs = tf.cast(outputs, "float32")
        channels, width = self.event_shape[-1], outputs.shape[-1]
        offset = tf.cast(self.log_scale_offset, "float32")[..., None]
        if width == channels and self.num_components in (None, 1):
            locs = (outputs / 127.5 - 1.0)[..., None]
            return (tf.zeros_like(locs[..., 0, :]), locs,
                    tf.broadcast_to(offset, tf.shape(locs)))
        m = (width or 0) // (1 + 2 * channels)
        if width != parameter_channels(channels, m) or m < 1 or self.num_components not in (
                None, m):
            raise ValueError(
                f"The decoder gives {width} channels per pixel; the discretized_logistic "
                f"likelihood of {channels}-channel images reads {channels} (one logistic) "
                f"or M (1 + 2 x {channels}) (M components, e.g. the 'conv8' preset).")
        lead = tf.shape(outputs)[:-1]
        shape = tf.concat([lead, [channels, m]], 0)
        locs = tf.reshape(outputs[..., m:m + channels * m], shape)
        log_scales = tf.reshape(outputs[..., m + channels * m:], shape) + offset
        return outputs[..., :m], locs, log_scales

    def distribution(self, params):
        return tfd.Independent(DiscretizedLogisticMixture(*self.split(params)),
                               reinterpreted_batch_ndims=2)

    def mean(self, params):
        return pixel_means(*self.split(params))

    def parameters(self, params):
        """{'logit_m', 'loc_m', 'log_scale_m'}, m < M, each [N, H, W, C] (`flat_parameters`)."""
        return flat_parameters(*self.split(params))

    def draw_pixels(self, parameters, uniform):
        """Images [N, H, W, C] in 0..255 (float32) from `parameters` and uniform [N, H, W, C, 2]."""
        return draw(*stacked_parameters(parameters), tf.cast(uniform, "float32"))

    def validate(self, x, name="x"):
        """Values in [0, 255] (`validation.check_support`) and integers."""
        validation.check_support(x, self, name)
        validation.check_integer_values(x, name, "discretized_logistic")

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, init_scale=self.init_scale)
        return config


__all__ = [
    "NUM_BINS", "HALF_BIN", "MIN_LOG_SCALE", "to_centred", "to_pixels", "component_log_probs",
    "pixel_log_probs", "pixel_means", "draw", "DiscretizedLogisticMixture", "flat_parameters",
    "stacked_parameters", "parameter_channels", "DiscretizedLogisticLikelihood",
]
