"""The Keras model's own outputs on fixed inputs: what every exported artefact must reproduce.

```none
z     [REFERENCE_ROWS, d]       ~ N(0, I)          decode = model.decoder_parameters(z)
x     [REFERENCE_ROWS, *event]  ~ U(0, 1)          encode = model.encoder_parameters(x)
draws [DISTRIBUTION_DRAWS, *event] = model.sample(..., DISTRIBUTION_TEMPERATURE)
```

The seeds are fixed, so the parity figures of the manifest are reproducible.
"""

import numpy as np

from keras_vae.export import contract
from keras_vae.export import verify

#: Seed of the reference inputs (z, x) and draws.
REFERENCE_SEED = 20240601
#: Rows of z and x in the decode / encode checks.
REFERENCE_ROWS = 16


def reference_z(latent_dim, rng=None):
    """The reference z [REFERENCE_ROWS, latent_dim] (float32): the first draws of the seed."""
    rng = np.random.default_rng(REFERENCE_SEED) if rng is None else rng
    return rng.standard_normal((REFERENCE_ROWS, latent_dim)).astype("float32")


class Reference:
    """The Keras model's outputs on the reference inputs.

    Attributes:
      z: float32 [R, d] standard normal draws; decode: the model's outputs on them.
      x: float32 [R, *event] uniform in [0, 1]; encode: {'loc', 'scale'} on them.
      draws: images [DRAWS, *event] from `model.sample` at DISTRIBUTION_TEMPERATURE.
    """

    def __init__(self, model, spec):
        self.model = model
        self.spec = spec
        rng = np.random.default_rng(REFERENCE_SEED)
        self.z = reference_z(spec.latent_dim, rng)
        self.x = rng.uniform(0.0, 1.0, (REFERENCE_ROWS,) + spec.event_shape).astype("float32")
        self.decode = self.decode_at(self.z)
        loc, scale = model.encoder_parameters(self.x)
        self.encode = {contract.LOC: np.asarray(loc), contract.SCALE: np.asarray(scale)}
        self._draws = None

    def decode_at(self, z):
        """The Keras model's decoder outputs (numpy) at z."""
        outputs = self.model.decoder_parameters(np.asarray(z, "float32"))
        return {key: np.asarray(value) for key, value in outputs.items()}

    def sampled_images(self, z, seed):
        """The images `sample(len(z), T, seed)` must give with z: `images_at` on the
        counter generator's pixel uniforms of that seed."""
        uniform = None
        if self.spec.noise_per_pixel:
            from keras_vae.export import graphs

            uniform = graphs.counter_pixels(self.spec, len(z), np.int64(seed)).numpy()
        return self.images_at(z, uniform)

    def images_at(self, z, uniform=None):
        """The images a sampler must give for z: the mean, or the likelihood's
        `draw_pixels(parameters, uniform)` when it draws pixels (uniform [N, *event, k])."""
        if not self.spec.noise_per_pixel:
            return self.decode_at(z)[contract.MEAN]
        parameters = self.model.decoder_parameters(np.asarray(z, "float32"))
        return np.asarray(self.model.likelihood.draw_pixels(parameters,
                                                            np.asarray(uniform, "float32")))

    @property
    def draws(self):
        """Many images from the Keras model's own sampler (drawn once, on first use).

        For a likelihood that draws pixels: z from the Keras prior, pixels from
        `draw_pixels` on numpy uniforms.
        """
        if self._draws is None:
            n, t = verify.DISTRIBUTION_DRAWS, verify.DISTRIBUTION_TEMPERATURE
            if self.spec.noise_per_pixel:
                z = np.asarray(self.model.sample_latents(n, t, seed=REFERENCE_SEED))
                shape = (n,) + self.spec.event_shape + (self.spec.noise_per_pixel,)
                uniform = np.random.default_rng(REFERENCE_SEED + 1).uniform(size=shape)
                self._draws = self.images_at(z, np.clip(uniform, 1e-7, 1 - 1e-7))
            else:
                self._draws = np.asarray(self.model.sample(n, t, seed=REFERENCE_SEED))
        return self._draws


__all__ = ["REFERENCE_SEED", "REFERENCE_ROWS", "reference_z", "Reference"]
