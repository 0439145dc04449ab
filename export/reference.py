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

    @property
    def draws(self):
        """Many images from the Keras model's own sampler (drawn once, on first use)."""
        if self._draws is None:
            self._draws = np.asarray(self.model.sample(
                verify.DISTRIBUTION_DRAWS, verify.DISTRIBUTION_TEMPERATURE, seed=REFERENCE_SEED
            ))
        return self._draws


__all__ = ["REFERENCE_SEED", "REFERENCE_ROWS", "reference_z", "Reference"]
