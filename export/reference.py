r"""The Keras model's own outputs on fixed inputs: what every exported artefact must reproduce.

```none
z      [REFERENCE_ROWS, d]       ~ N(0, I)          decode = model.decoder_parameters(z[, y])
x      [REFERENCE_ROWS, *event]  ~ U(0, 1)          encode = model.encoder_parameters(x[, y])
labels [REFERENCE_ROWS]          = 0, 1, ..., C-1, 0, ...       (conditional models)
draws  [DISTRIBUTION_DRAWS, *event] = the Keras model's samples at DISTRIBUTION_TEMPERATURE
expected_z(seeds, temperatures, labels): contract 2's z, computed in numpy (float64) from
         `prng.numpy_row_noise`: an independent reference for every runtime's sampler
```

The seeds are fixed, so the parity figures of the manifest are reproducible.
"""

import numpy as np

from keras_vae.export import contract
from keras_vae.export import prng
from keras_vae.export import verify

#: Seed of the reference inputs (z, x) and draws.
REFERENCE_SEED = 20240601
#: Rows of z and x in the decode / encode checks.
REFERENCE_ROWS = 16


def reference_z(latent_dim, rng=None):
    """The reference z [REFERENCE_ROWS, latent_dim] (float32): the first draws of the seed."""
    rng = np.random.default_rng(REFERENCE_SEED) if rng is None else rng
    return rng.standard_normal((REFERENCE_ROWS, latent_dim)).astype("float32")


def reference_labels(spec, rows):
    """The condition input of `rows` rows: labels 0..C-1 cycling, a fixed vector, or None."""
    if spec.num_classes:
        return (np.arange(rows) % spec.num_classes).astype("int64")
    if spec.condition_dim:
        rng = np.random.default_rng(REFERENCE_SEED + 2)
        return rng.uniform(-1, 1, (rows,) + tuple(spec.condition_shape)).astype("float32")
    return None


class Reference:
    """The Keras model's outputs on the reference inputs.

    Attributes:
      z: float32 [R, d] standard normal draws; decode: the model's outputs on them.
      x: float32 [R, *event] uniform in [0, 1]; encode: {'loc', 'scale'} on them.
      labels: the condition input of the R rows (None when unconditional).
      draws: images [DRAWS, *event] from the Keras model at DISTRIBUTION_TEMPERATURE.
    """

    def __init__(self, model, spec):
        self.model = model
        self.spec = spec
        rng = np.random.default_rng(REFERENCE_SEED)
        self.z = reference_z(spec.latent_dim, rng)
        self.x = rng.uniform(0.0, 1.0, (REFERENCE_ROWS,) + spec.event_shape).astype("float32")
        self.labels = reference_labels(spec, REFERENCE_ROWS)
        self.decode = self.decode_at(self.z, self.labels)
        loc, scale = spec.encoder_parameters(model, self.x, self.vector(self.labels))
        self.encode = {contract.LOC: np.asarray(loc), contract.SCALE: np.asarray(scale)}
        self._draws = None

    def inputs(self, **named):
        """{name: array} plus the condition input (under its contract name) when conditional."""
        extra = contract.condition_input(self.spec.num_classes, self.spec.condition_dim)
        labels = named.pop("labels", self.labels)
        if extra:
            named[extra] = labels
        return named

    def vector(self, labels):
        """The condition vector [N, c] of the labels (one-hot for classes), or None."""
        if labels is None or not self.spec.condition_dim:
            return None
        if self.spec.num_classes:
            return np.eye(self.spec.num_classes, dtype="float32")[np.asarray(labels)]
        return np.asarray(labels, "float32").reshape(len(labels), -1)

    def decode_at(self, z, labels=None):
        """The Keras model's decoder outputs (numpy) at z (and labels, when conditional)."""
        outputs = self.spec.decoder_parameters(self.model, np.asarray(z, "float32"),
                                               self.vector(labels))
        return {key: np.asarray(value) for key, value in outputs.items()}

    def images_at(self, z, uniform=None, labels=None):
        """The images a sampler must give for z: the mean, or the likelihood's
        `draw_pixels(parameters, uniform)` when it draws pixels (uniform [N, *event, k])."""
        if not self.spec.noise_per_pixel:
            return self.decode_at(z, labels)[contract.MEAN]
        parameters = self.spec.decoder_parameters(self.model, np.asarray(z, "float32"),
                                                  self.vector(labels))
        return np.asarray(self.model.likelihood.draw_pixels(parameters,
                                                            np.asarray(uniform, "float32")))

    def _noise(self, seeds):
        spec = self.spec
        mixture = spec.prior_logits is not None
        pixels = int(np.prod(spec.event_shape)) * spec.noise_per_pixel
        return prng.numpy_row_noise(seeds, spec.latent_dim, pixels, mixture)

    def expected_z(self, seeds, temperatures, labels=None):
        """Contract 2's z of `sample(seeds, temperatures[, labels])`, in float64 numpy."""
        spec = self.spec
        eps, uniform, _ = self._noise(seeds)
        t = np.asarray(temperatures, "float64")[:, None]
        if spec.class_conditional_prior:
            index = np.asarray(labels)
            return spec.class_loc[index] + t * spec.class_scale[index] * eps
        if spec.vector_prior is not None:
            matrix, raw, min_scale = (np.asarray(v, "float64") for v in spec.vector_prior)
            vector = self.vector(labels).astype("float64")
            scale = np.logaddexp(0.0, vector @ raw) + min_scale
            return vector @ matrix + t * scale * eps
        if spec.standard_normal:
            return t * eps
        index = np.zeros(len(eps), "int64")
        if spec.prior_logits is not None:
            probs = np.exp(spec.prior_logits - spec.prior_logits.max())
            cdf = np.cumsum(probs / probs.sum())[:-1].astype("float32")
            index = np.sum(uniform.astype("float32")[:, None] > cdf[None, :], 1)
        return spec.prior_loc[index] + t * spec.prior_scale[index] * eps

    def sampled_images(self, z, seeds, labels=None):
        """The images `sample(seeds, ...)` must give with its z: `images_at` on the pixel
        uniforms of those seeds."""
        uniform = None
        if self.spec.noise_per_pixel:
            pixels = self._noise(seeds)[2]
            uniform = pixels.reshape((len(z),) + self.spec.event_shape
                                     + (self.spec.noise_per_pixel,))
        return self.images_at(z, uniform, labels)

    @property
    def draw_labels(self):
        """The labels of the DISTRIBUTION_DRAWS draws (cycling), or None."""
        return reference_labels(self.spec, verify.DISTRIBUTION_DRAWS)

    @property
    def draws(self):
        """Many images from the Keras model's own sampler (drawn once, on first use).

        For a likelihood that draws pixels: z from the prior, pixels from
        `draw_pixels` on numpy uniforms.
        """
        if self._draws is None:
            self._draws = self._keras_draws()
        return self._draws

    def _keras_draws(self):
        n, t, spec = verify.DISTRIBUTION_DRAWS, verify.DISTRIBUTION_TEMPERATURE, self.spec
        labels = self.draw_labels
        if not spec.noise_per_pixel:
            kwargs = {"labels": labels} if labels is not None else {}
            return np.asarray(self.model.sample(n, temperature=t, seed=REFERENCE_SEED, **kwargs))
        rng = np.random.default_rng(REFERENCE_SEED + 1)
        if spec.condition_dim:
            z = np.asarray(self.model.sample_latents(n, t, seed=REFERENCE_SEED, labels=labels))
        else:
            z = np.asarray(self.model.sample_latents(n, t, seed=REFERENCE_SEED))
        uniform = rng.uniform(size=(n,) + spec.event_shape + (spec.noise_per_pixel,))
        return self.images_at(z, np.clip(uniform, 1e-7, 1 - 1e-7), labels)


__all__ = ["REFERENCE_SEED", "REFERENCE_ROWS", "reference_z", "reference_labels", "Reference"]
