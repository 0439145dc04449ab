"""keras_vae: variational autoencoders in Keras 3 whose densities are TFP distributions.

```python
import keras_vae
model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae", objective="iwae")
model.compile(optimizer="adam")
model.fit(x_train, epochs=10, batch_size=100)
```
"""

from keras_vae import _backend  # noqa: F401  (pins the TensorFlow backend first)
from keras_vae import likelihoods, networks, objectives, posteriors, priors
from keras_vae.model import VAE
from keras_vae.objectives import CIWAE, ELBO, IWAE, MIWAE, PIWAE

__version__ = "0.1.0"

__all__ = [
    "VAE", "ELBO", "IWAE", "MIWAE", "PIWAE", "CIWAE",
    "likelihoods", "networks", "objectives", "posteriors", "priors",
]
