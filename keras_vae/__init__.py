"""keras_vae: variational autoencoders in Keras 3 whose densities are TFP distributions.

```python
import keras_vae
model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae", objective="iwae")
model.compile(optimizer="adam")
model.fit(x_train, epochs=10, batch_size=100)
```

Modules: `names` (the registry of every named family member), `objectives` (ELBO, IWAE,
MIWAE, PIWAE, CIWAE as functions of log-weights),
`priors`, `likelihoods`, `posteriors` (`flows`: IAF, planar; `made`), `networks` (presets), `data`, `evaluation`,
`hierarchical`, `baselines`, `comparison`, `plotting`; `keras_vae.export` and
`keras_vae.serving` (imported on use: they pull in ONNX and gRPC).
"""

from keras_vae import _backend  # noqa: F401  (pins the TensorFlow backend first)
from keras_vae import (
    baselines, comparison, data, evaluation, hierarchical, likelihoods, names, networks,
    objectives, posteriors, priors,
)
from keras_vae import flows, made  # noqa: E402  (flow posteriors, MADE)
from keras_vae.baselines import PCA, Autoencoder
from keras_vae.hierarchical import HierarchicalVAE
from keras_vae.model import VAE
from keras_vae import gmvae  # noqa: E402  (the categorical-latent GMVAE, its 'gmvae' posterior)
from keras_vae.gmvae import GaussianMixtureVAE
from keras_vae.objectives import CIWAE, ELBO, IWAE, MIWAE, PIWAE

__version__ = "0.1.0"

__all__ = [
    "VAE", "HierarchicalVAE", "GaussianMixtureVAE", "gmvae", "PCA", "Autoencoder",
    "ELBO", "IWAE", "MIWAE", "PIWAE", "CIWAE",
    "baselines", "comparison", "data", "evaluation", "hierarchical", "likelihoods", "names",
    "networks", "objectives", "posteriors", "priors", "flows", "made",
]
