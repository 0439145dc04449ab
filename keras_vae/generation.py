r"""The user API of a trained VAE: reconstructions, samples, latent paths, clusters.

```none
reconstruct(x)      E p(x | z, y),  z = E q(z|x, y) (or a draw of it)
sample(n, T)        E p(x | z, y),  z ~ p(z) (p(z|y)) with the scales times T
interpolate(a, b)   E p(x | z_t, y) along lerp / slerp(E q(z|a, y), E q(z|b, y), t)
cluster(x)          the mixture component of each example (evaluation.clustering)
```

`labels` is None for an unconditional model; for a conditional one, one label
(repeated) or one per example (`keras_vae.conditioning.resolve`). `GenerationMixin`
is a base of `keras_vae.VAE`; it uses the model's hooks (`_posterior_params`,
`_likelihood_outputs`, `_decoder_outputs`) and nothing else.

Example:

```python
images = model.sample(16, temperature=0.8, seed=1)
threes = cvae.sample(16, labels=3, seed=1)
strips = cvae.interpolate(x[0], x[1], steps=8, method="slerp", labels=y[0])
```
"""

import numpy as np

from keras_vae import latent, networks
from keras_vae._backend import tf


class GenerationMixin:
    """`call`, `reconstruct`, `sample_latents`, `sample`, `interpolate`, `cluster`."""

    def call(self, x, training=False):
        """The reconstruction mean: E p(x | z = E q(z|x)) (z the latent next to x).

        A conditional model takes the pair (x, labels).
        """
        labels = None
        if isinstance(x, (tuple, list)) and len(x) == 2 and self.is_conditional:
            x, labels = x
        condition = self._condition(labels, "call")
        loc, _ = self._posterior_params(x, training, condition)
        return self.likelihood.mean(self._likelihood_outputs(loc, training, condition))

    def reconstruct(self, x, sample=False, seed=None, labels=None):
        """Decodes the mean of q(z|x) (or a draw from it, with sample=True).

        z is the latent next to x (z1 in a hierarchy): this is the reconstruction
        the bound scores, log p(x|z) (log p(x|z, y) given `labels`).
        """
        self.validate_inputs(x, "x")
        condition = self._condition(labels, "reconstruct", np.shape(x)[0])
        params = self._posterior_params(tf.cast(x, "float32"), False, condition)
        z = self.posterior.sample(params, seed=self._seed(seed)) if sample else params[0]
        return self.likelihood.mean(self._likelihood_outputs(z, False, condition))

    def sample_latents(self, num_samples, temperature=1.0, seed=None, labels=None):
        """Draws z [n, d] from the prior (p(z|y) for a class-conditional one) at a temperature."""
        condition = self._condition(labels, "sample_latents", num_samples)
        return self._prior_draws(num_samples, temperature, seed, condition)

    def _prior_draws(self, num_samples, temperature, seed, condition):
        if condition is not None and self.prior.conditional:
            return self.prior.sample(num_samples, temperature, seed=self._seed(seed),
                                     encode=self._encode_prior, condition=condition)
        return self.prior.sample(num_samples, temperature, seed=self._seed(seed),
                                 encode=self._encode_prior)

    def sample(self, num_samples, temperature=1.0, seed=None, labels=None):
        """Mean images of p(x|z) (p(x|z, y)) for z drawn from the prior: [n, *event_shape].

        Args:
          num_samples: n.
          temperature: T >= 0, the factor on the prior's scales.
          seed: an int (reproducible) or None (the model's sample seed).
          labels: a conditional model's class (or condition), repeated n times, or
            one per sample; None for an unconditional model.

        Raises:
          ValueError: n <= 0, T < 0, or labels that do not fit the model.
        """
        condition = self._condition(labels, "sample", num_samples)
        z = self._prior_draws(num_samples, temperature, seed, condition)
        return self.likelihood.mean(self._decoder_outputs(z, condition=condition))

    def interpolate(self, x_a, x_b, steps=8, method="linear", labels=None):
        """Decodes a path between the posterior means of x_a and x_b.

        `method` is 'linear' or 'slerp' (spherical, which keeps the norm typical
        of a Gaussian prior; White, 2016). Single examples give
        [steps, *event_shape]; batches [B, steps, *event_shape]. A conditional
        model encodes and decodes the whole path with `labels` (one per pair).
        """
        latent.check_path(steps, method)
        single = np.ndim(x_a) == len(self.event_shape)
        x_a, x_b = (np.asarray(v, "float32")[None] if single else np.asarray(v, "float32")
                    for v in (x_a, x_b))
        self.validate_inputs(x_a, "x_a")
        self.validate_inputs(x_b, "x_b")
        condition = self._condition(labels, "interpolate", len(x_a))
        ends = [self._encode_mean(v, condition) for v in (x_a, x_b)]
        path = latent.path(ends[0], ends[1], steps, method)
        images = self.likelihood.mean(self._decoder_outputs(
            path, condition=None if condition is None else condition[:, None, :]))
        return images[0] if single else images

    def _encode_mean(self, x, condition):
        """E q(z|x) (E q(z|x, y)) of the model's latent (`encode`, z2 in a hierarchy)."""
        if condition is None:
            return self.encode(x).mean()
        return self.posterior.distribution(self._posterior_params(x, False, condition)).mean()

    def cluster(self, x):
        """The mixture component of each example: `keras_vae.evaluation.clustering.assign`."""
        from keras_vae.evaluation import clustering  # evaluation imports the model

        return clustering.assign(self, x)

    def initialize_output_bias(self, x):
        """Sets the decoder's output bias to the logit of the mean training pixel (Burda et al.).

        The logit for a likelihood on [0, 1] (Bernoulli, continuous Bernoulli); for
        others (Gaussian) the mean itself.
        """
        self.build()
        logit = tuple(self.likelihood.support) == (0.0, 1.0)
        networks.initialize_output_bias(self.decoder, x, logit=logit)


__all__ = ["GenerationMixin"]
