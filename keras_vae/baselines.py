r"""The baselines a VAE is explained against: PCA and a deterministic autoencoder.

Both encode, decode, reconstruct and interpolate with the VAE's method names, so
`keras_vae.comparison.compare` can put the three side by side.

```none
PCA            z = W^T (x - m),          x^ = W z + m           W: top-d right singular vectors
autoencoder    z = f(x),                 x^ = g(z)              f, g: the VAE's networks,
               min_f,g  sum_i loss(x_i, g(f(x_i)))              no noise, no prior
```

PCA is the best *linear* code of size d in squared error (Eckart & Young, 1936);
the autoencoder is its non-linear generalisation. Neither defines p(x), and
neither has a distribution to sample from: decoding N(0, I) draws through the
autoencoder's decoder lands wherever the unregularised code space happens to
have no training points ("holes"), which is the failure the VAE's prior and
KL term remove.

References:
  C. Eckart, G. Young. The approximation of one matrix by another of lower rank.
    Psychometrika, 1936.
  G. Hinton, R. Salakhutdinov. Reducing the dimensionality of data with neural
    networks. Science, 2006.
"""

import numpy as np

from keras_vae import latent, networks
from keras_vae._backend import keras, tf


def _lerp_path(z_a, z_b, steps):
    """[steps, d]: the straight line from z_a [d] to z_b [d] (NumPy)."""
    latent.check_path(steps)
    return latent.lerp(z_a[None], z_b[None], np.linspace(0.0, 1.0, int(steps))[:, None])


class PCA:
    r"""Principal component analysis in closed form, with the VAE's method names.

    ```none
    X - 1 m^T = U S V^T   (thin SVD of the centred data, N x D)
    W = V[:, :d]          (D x d, orthonormal columns)
    encode(x) = W^T (x - m),   decode(z) = W z + m
    ```

    `decode(encode(x))` is the orthogonal projection of x onto the affine
    subspace spanned by the top d principal directions.

    Args:
      latent_dim: d, the number of components kept.

    Example:

    ```python
    pca = PCA(latent_dim=16).fit(x_train)            # x_train: [N, 28, 28, 1]
    x_hat = pca.reconstruct(x_test)
    strip = pca.interpolate(x_test[0], x_test[1], steps=8)
    ```
    """

    def __init__(self, latent_dim):
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        self.latent_dim = int(latent_dim)
        self.event_shape = None
        self.mean = None
        self.components = None
        self.explained_variance = None

    def fit(self, x):
        """Fits m, W (and the variance along each component) to x [N, *event_shape]."""
        x = np.asarray(x, np.float64)
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(f"PCA needs a batch of at least 2 examples, got shape {x.shape}.")
        self.event_shape = tuple(int(s) for s in x.shape[1:])
        flat = x.reshape(len(x), -1)
        if self.latent_dim > min(flat.shape):
            raise ValueError(
                f"latent_dim={self.latent_dim} exceeds min(N, D) = {min(flat.shape)}."
            )
        self.mean = flat.mean(axis=0)
        _, s, vt = np.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = vt[: self.latent_dim].T  # W: [D, d]
        self.explained_variance = s[: self.latent_dim] ** 2 / (len(flat) - 1)
        return self

    def _check_fitted(self):
        if self.components is None:
            raise ValueError("This PCA is not fitted yet: call fit(x) first.")

    def encode(self, x):
        """z = W^T (x - m): [N, *event_shape] -> [N, d]."""
        self._check_fitted()
        x = np.asarray(x, np.float64)
        return (x.reshape(len(x), -1) - self.mean) @ self.components

    def decode(self, z):
        """x = W z + m: [N, d] -> [N, *event_shape]."""
        self._check_fitted()
        z = np.asarray(z, np.float64)
        return (z @ self.components.T + self.mean).reshape((len(z),) + self.event_shape)

    def reconstruct(self, x):
        """The projection W W^T (x - m) + m."""
        return self.decode(self.encode(x))

    def interpolate(self, x_a, x_b, steps=8):
        """Decodes the straight line between the codes of two examples: [steps, *event_shape]."""
        z_a, z_b = self.encode(np.asarray(x_a)[None])[0], self.encode(np.asarray(x_b)[None])[0]
        return self.decode(_lerp_path(z_a, z_b, steps))

    def sample(self, num_samples, seed=None):
        """Decodes z ~ N(0, diag(explained variance)): the Gaussian fit to the training codes.

        PCA is not a generative model; this is the closest reading of "random latent
        points" (it is what probabilistic PCA samples as its noise goes to 0).
        """
        self._check_fitted()
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((int(num_samples), self.latent_dim))
        return self.decode(z * np.sqrt(self.explained_variance))

    def get_config(self):
        return {"latent_dim": self.latent_dim}

    def save(self, path):
        """Writes the fitted mean, components and variances to an .npz file."""
        self._check_fitted()
        np.savez(path, latent_dim=self.latent_dim, event_shape=np.array(self.event_shape),
                 mean=self.mean, components=self.components,
                 explained_variance=self.explained_variance)

    @classmethod
    def load(cls, path):
        data = np.load(path)
        pca = cls(int(data["latent_dim"]))
        pca.event_shape = tuple(int(s) for s in data["event_shape"])
        pca.mean = data["mean"]
        pca.components = data["components"]
        pca.explained_variance = data["explained_variance"]
        return pca


LOSSES = ("bce", "mse")


@keras.saving.register_keras_serializable(package="keras_vae")
class Autoencoder(keras.Model):
    r"""A deterministic autoencoder on the VAE's networks, trained with `fit(x)`.

    ```none
    z = W_c f(x) + b_c        f: the VAE preset's encoder, then a Dense code layer
    x^ = g(z)                 g: the VAE preset's decoder (logits, or values for 'mse')
    loss = sum_pixels BCE(x, sigmoid(g(z)))   or   sum_pixels (x - g(z))^2,  batch mean
    ```

    The code layer takes the place of the VAE's posterior head, and there is no
    noise and no prior: the code space has whatever shape training gives it.
    `sample` decodes N(0, I) draws anyway, to show what goes wrong.

    Args:
      latent_dim: d, the size of the code. Defaults to the preset's.
      event_shape: the shape of one example.
      encoder: a preset name of `keras_vae.networks` ('mlp', 'conv', 'iwae').
      loss: 'bce' (data in [0, 1]; the decoder outputs logits, decode applies a
        sigmoid) or 'mse'.

    Example:

    ```python
    ae = Autoencoder(latent_dim=16, encoder="mlp", loss="bce")
    ae.compile(optimizer="adam")
    ae.fit(x_train, epochs=10, batch_size=100)
    x_hat = ae.reconstruct(x_test)
    holes = ae.sample(16, seed=0)        # decoded N(0, I) draws: no prior was fit
    ```
    """

    def __init__(self, latent_dim=None, event_shape=(28, 28, 1), encoder="mlp", loss="bce",
                 **kwargs):
        super().__init__(**kwargs)
        networks.check_preset(encoder)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
        self.preset = encoder
        self.loss_name = loss
        self.event_shape = tuple(int(s) for s in event_shape)
        self.latent_dim = int(latent_dim or networks.PRESETS[encoder]["latent_dim"])
        self.encoder = networks.build_encoder(encoder, self.event_shape)
        self.code = keras.layers.Dense(self.latent_dim, name="code")
        self.decoder = networks.build_decoder(encoder, self.latent_dim, self.event_shape)
        shape = (None,) + self.event_shape
        self.encoder.build(shape)
        self.code.build(self.encoder.compute_output_shape(shape))
        self.decoder.build((None, self.latent_dim))
        self.built = True

    def _output(self, outputs):
        outputs = tf.cast(outputs, "float32")
        return tf.sigmoid(outputs) if self.loss_name == "bce" else outputs

    def call(self, x, training=False):
        """The raw decoder output for x: logits ('bce') or values ('mse')."""
        return self.decoder(self.code(self.encoder(x, training=training)), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The reconstruction loss of x (the target is x itself; y is ignored)."""
        target = tf.cast(x, "float32")
        outputs = tf.cast(y_pred, "float32")
        axes = list(range(1, len(self.event_shape) + 1))
        if self.loss_name == "bce":
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=outputs)
        else:
            per_pixel = tf.square(target - outputs)
        loss = tf.reduce_mean(tf.reduce_sum(per_pixel, axis=axes))
        losses = [tf.cast(l, "float32") for l in self.losses]
        return loss + tf.add_n(losses) if losses else loss

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit` on x alone (the target of an autoencoder is its input)."""
        if y is not None:
            raise ValueError("An autoencoder learns to reproduce x: call fit(x) with no y.")
        return super().fit(x, None, *args, **kwargs)

    def encode(self, x):
        """z = code(f(x)): [N, *event_shape] -> [N, d]."""
        return self.code(self.encoder(tf.cast(x, "float32")))

    def decode(self, z):
        """x^ = g(z) (through a sigmoid for 'bce'): [N, d] -> [N, *event_shape]."""
        return self._output(self.decoder(tf.cast(z, "float32")))

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    def interpolate(self, x_a, x_b, steps=8):
        """Decodes the straight line between the codes of two examples: [steps, *event_shape]."""
        latent.check_path(steps)
        z = self.encode(np.stack([np.asarray(x_a), np.asarray(x_b)]).astype("float32")).numpy()
        return self.decode(_lerp_path(z[0], z[1], steps).astype("float32"))

    def sample(self, num_samples, seed=None):
        """Decodes z ~ N(0, I), as a VAE samples; the autoencoder never fit such a prior."""
        z = keras.random.normal((int(num_samples), self.latent_dim),
                                seed=None if seed is None else int(seed))
        return self.decode(z)

    def initialize_output_bias(self, x):
        """Starts the decoder's output at the mean training example (its logit for 'bce')."""
        networks.initialize_output_bias(self.decoder, x, logit=self.loss_name == "bce")

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, event_shape=list(self.event_shape),
                      encoder=self.preset, loss=self.loss_name)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


__all__ = ["PCA", "Autoencoder"]
