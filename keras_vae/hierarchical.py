r"""A VAE with two stochastic layers (Burda et al., 2016): the IWAE paper's strongest net.

```none
inference   x --enc1--> q(z1|x) --z1--> enc2 --> q(z2|z1)
generation  p(z2) --z2--> dec2 --> p(z1|z2) --z1--> dec1 --> p(x|z1)

log w_s = log p(x|z1_s) + log p(z1_s|z2_s) + log p(z2_s)
          - log q(z1_s|x) - log q(z2_s|z1_s)                        [S, B]
z1_s = mu1(x) + sigma1(x) eps1_s,   z2_s = mu2(z1_s) + sigma2(z1_s) eps2_s
```

Every density is a TFP distribution, each draw is reparameterised, and the
log-weights are the same [S, B] tensor a one-layer VAE produces, so ELBO, IWAE,
MIWAE, PIWAE, CIWAE, KL warm-up and DReG apply unchanged (`objectives.py`). No
analytic KL exists for the whole chain: the KL is always the Monte-Carlo one.

The model's "latent" is the top layer z2: `latent_dim` is z2's size, the prior is
p(z2), and `decode(z2)` (so `sample`, `interpolate`, `decoder_parameters` and an
exported decoder) goes z2 -> E p(z1|z2) -> p(x|z1). `encode(x)` is q(z2 | z1 =
E q(z1|x)), the deterministic mean path through the inference network.

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016
    (section 5: two stochastic layers of 100 and 50 units, MNIST test NLL 82.90 nats
    with IWAE k=50).
"""

import inspect

from keras_vae import networks, noise
from keras_vae import objectives as objectives_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae._backend import keras, tf
from keras_vae.model import VAE

#: Why each `VAE` argument that HierarchicalVAE cannot pass on is refused.
_REFUSED = {
    "latent_dim": "it is latent_dims[1], the size of the top latent z2",
    "encoder": "the networks come from hidden_units and activation (and are saved as those)",
    "decoder": "the networks come from hidden_units and activation (and are saved as those)",
    "posterior": "q(z1|x) and q(z2|z1) are diagonal-Gaussian heads of widths latent_dims",
}
_CONDITION = ("conditioning the chain needs the condition in all five densities (q(z1|x, y), "
              "q(z2|z1, y), p(z1|z2, y), p(x|z1, y), p(z2|y)), which its hooks do not take: "
              "use keras_vae.VAE for a conditional model")
_REFUSED.update(num_classes=_CONDITION, condition_shape=_CONDITION, conditional_prior=_CONDITION)


@keras.saving.register_keras_serializable(package="keras_vae")
class HierarchicalVAE(VAE):
    r"""A VAE with two stochastic layers: q(z1|x) q(z2|z1) and p(z2) p(z1|z2) p(x|z1).

    ```none
    q(z1|x)  = N(mu1(x), diag sigma1(x)^2)       enc1: x -> h1 (hidden_units[0])
    q(z2|z1) = N(mu2(z1), diag sigma2(z1)^2)     enc2: z1 -> h2 (hidden_units[1])
    p(z2)    = the prior ('normal', 'mixture', 'vamp')
    p(z1|z2) = N(m(z2), diag s(z2)^2)            dec2: z2 -> g2 (hidden_units[1] mirrored)
    p(x|z1)  = the likelihood                    dec1: z1 -> x  (hidden_units[0] mirrored)
    ```

    The defaults are the IWAE paper's net: latents (100, 50); encoder
    784-200-200-z1 and z1-100-100-z2; decoder z2-100-100-z1 and z1-200-200-784;
    tanh; Bernoulli output whose bias `initialize_output_bias` sets to the logit
    of the mean training pixel.

    Args:
      latent_dims: (d1, d2), the sizes of z1 and z2. `latent_dim` is d2.
      event_shape: the shape of one example.
      hidden_units: (units of enc1/dec1, units of enc2/dec2), each a tuple of
        Dense widths (the decoders mirror them); an empty tuple makes that map
        linear (the heads' Dense layers only).
      activation: the hidden layers' activation.
      prior: p(z2): 'normal', 'mixture', 'vamp' or a `keras_vae.priors.Prior`.
      likelihood: p(x|z1), as for `VAE`.
      objective, beta, warmup_steps, gradient_estimator, seed: as for `VAE`
        ('dreg' stops the weights, not the inputs, of both inference heads).
      min_scale: the floor on the scales of q(z1|x), q(z2|z1) and p(z1|z2).
      **kwargs: passed on to `VAE` (e.g. `analytic_kl`, which changes nothing here:
        no analytic KL exists for the chain, so the KL is the Monte-Carlo one;
        and keras.Model's `name`). `latent_dim`, `encoder`, `decoder` and
        `posterior` are refused: `latent_dims`, `hidden_units` and `activation`
        define the networks and heads, and the model saves only those.

    Example:

    ```python
    import keras_vae
    from keras_vae.hierarchical import HierarchicalVAE
    model = HierarchicalVAE(objective=keras_vae.IWAE(k=50))   # Burda et al.'s net
    model.initialize_output_bias(x_train)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))
    model.fit(x_train, epochs=10, batch_size=20)
    images = model.sample(16, seed=1)            # z2 ~ p(z2), decoded through E p(z1|z2)
    ```
    """

    def __init__(self, latent_dims=(100, 50), event_shape=(28, 28, 1),
                 hidden_units=((200, 200), (100, 100)), activation="tanh", prior="normal",
                 likelihood="bernoulli", objective="elbo", beta=1.0, warmup_steps=0,
                 gradient_estimator="standard", seed=None, min_scale=1e-4, **kwargs):
        refused = sorted(set(kwargs) & set(_REFUSED))
        if refused:
            raise TypeError("HierarchicalVAE does not take " + "; ".join(
                f"{key}: {_REFUSED[key]}" for key in refused) + ".")
        latent_dims = tuple(int(d) for d in latent_dims)
        if len(latent_dims) != 2 or min(latent_dims) <= 0:
            raise ValueError(f"latent_dims must be two positive sizes (d1, d2), got {latent_dims}.")
        hidden_units = tuple(tuple(int(u) for u in units) for units in hidden_units)
        if len(hidden_units) != 2:
            raise ValueError(
                "hidden_units must be a pair: (widths of x<->z1, widths of z1<->z2), "
                f"got {hidden_units}."
            )
        event_shape = tuple(int(s) for s in event_shape)
        d1, d2 = latent_dims
        self.latent_dims = latent_dims
        self.hidden_units = hidden_units
        self.activation = activation
        self.min_scale = float(min_scale)
        # The second stochastic layer, q(z2|z1) and p(z1|z2), exists before VAE.__init__
        # builds the model (Keras tracks sub-layers set before Layer.__init__ too).
        self.encoder2 = networks.mlp(d1, hidden_units[1], activation, name="encoder2")
        self.posterior2 = posteriors_lib.DiagonalGaussianPosterior(
            d2, min_scale, name="posterior2"
        )
        self.decoder2 = networks.mlp(d2, tuple(reversed(hidden_units[1])), activation,
                                     name="decoder2")
        self.conditional_prior = posteriors_lib.DiagonalGaussianPosterior(
            d1, min_scale, name="conditional_prior"
        )
        kwargs.setdefault("analytic_kl", False)
        super().__init__(
            latent_dim=d2, event_shape=event_shape,
            encoder=networks.build_encoder("iwae", event_shape, hidden_units[0], activation),
            decoder=networks.build_decoder("iwae", d1, event_shape, hidden_units[0],
                                           activation),
            posterior=posteriors_lib.DiagonalGaussianPosterior(d1, min_scale, name="posterior"),
            prior=prior, likelihood=likelihood, objective=objective, beta=beta,
            warmup_steps=warmup_steps, gradient_estimator=gradient_estimator, seed=seed,
            **kwargs,
        )
        if getattr(self.objective, "free_bits", 0) > 0:
            raise ValueError(
                "free bits need a per-unit KL, which the two-layer chain does not have: "
                "use free_bits=0 (or KL warm-up) with HierarchicalVAE."
            )

    @classmethod
    def preset(cls, name="iwae", **kwargs):
        """The model with a named architecture (`PRESETS`: 'iwae', the defaults)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})

    def _build_order(self):
        d1, d2 = self.latent_dims
        x_shape = (None,) + self.event_shape
        return [(self.encoder, x_shape), (self.encoder2, (None, d1)),
                (self.decoder2, (None, d2)), (self.decoder, (None, d1)),
                (self.likelihood, x_shape),
                (self.posterior, lambda: self.encoder.compute_output_shape(x_shape)),
                (self.posterior2, lambda: self.encoder2.compute_output_shape((None, d1))),
                (self.conditional_prior, lambda: self.decoder2.compute_output_shape((None, d2))),
                (self.prior, None)]

    @property
    def encoder_layers(self):
        """Both inference networks and their heads: q(z1|x) and q(z2|z1)."""
        return (self.encoder, self.posterior, self.encoder2, self.posterior2)

    # ----------------------------------------------------------------- the five densities

    def posterior_z1(self, x, training=False):
        """q(z1|x): event shape [d1], batch [B]."""
        x = tf.cast(x, "float32")
        return self.posterior.distribution(self.posterior(self.encoder(x, training=training)))

    def posterior_z2(self, z1, training=False):
        """q(z2|z1) for z1 [..., d1]: event shape [d2]."""
        return self.posterior2.distribution(self._q2_params(z1, training))

    def conditional_prior_z1(self, z2, training=False):
        """p(z1|z2) for z2 [..., d2]: event shape [d1]."""
        return self.conditional_prior.distribution(self._p1_params(z2, training))

    def likelihood_x(self, z1, training=False):
        """p(x|z1) for z1 [..., d1]: a distribution over examples."""
        return self.likelihood.distribution(self._likelihood_outputs(z1, training))

    def _q2_params(self, z1, training=False, stop_weights=False):
        if stop_weights:
            def fn(z):
                features = networks.call_stopped(self.encoder2, z, training=training)
                return networks.call_stopped(self.posterior2, features)
        else:
            def fn(z):
                return self.posterior2(self.encoder2(z, training=training))
        return networks.apply_flat(fn, z1)

    def _p1_params(self, z2, training=False):
        return networks.apply_flat(
            lambda z: self.conditional_prior(self.decoder2(z, training=training)), z2
        )

    def sample_posterior(self, x, num_samples=1, seed=None, training=False):
        """Draws (z1 [S, B, d1], z2 [S, B, d2]) from q(z1|x) q(z2|z1).

        One standard-normal draw of shape [S, B, d1 + d2] feeds both layers, so an
        integer `seed` gives the draws `compute_terms(x, S, seed=seed)` uses.
        """
        draws = self._posterior_draws(tf.cast(x, "float32"), num_samples, training, seed,
                                      stop=False)
        return draws["z1"], draws["z2"]

    def _posterior_draws(self, x, num_samples, training, seed, stop, condition=None):
        """z1 ~ q(z1|x), z2 ~ q(z2|z1) from one normal draw [S, B, d1 + d2].

        Returns a dict: 'z1', 'z2', 'params1', 'params2' and 'stopped' (None, or
        q(z1|x)'s parameters stopped and q(z2|z1)'s with its weights stopped).
        """
        params1 = self.posterior(self.encoder(x, training=training))
        d1, d2 = self.latent_dims
        shape = tf.concat([[num_samples], tf.shape(params1[0])[:1], [d1 + d2]], axis=0)
        eps = noise.standard_normal(shape, seed=self._noise(seed))
        z1 = self.posterior.reparameterize(params1, eps[..., :d1])  # [S, B, d1]
        params2 = self._q2_params(z1, training)
        z2 = self.posterior2.reparameterize(params2, eps[..., d1:])  # [S, B, d2]
        stopped = None
        if stop:
            stopped = (tf.nest.map_structure(tf.stop_gradient, params1),
                       self._q2_params(z1, training, stop_weights=True))
        return {"z1": z1, "z2": z2, "params1": params1, "params2": params2,
                "stopped": stopped}

    def log_densities(self, x, z1, z2, training=False):
        """The five log-densities at given draws, each [S, B].

        Returns a dict with 'log_px_z1' = log p(x|z1), 'log_pz1_z2' = log p(z1|z2),
        'log_pz2' = log p(z2), 'log_qz1_x' = log q(z1|x), 'log_qz2_z1' = log q(z2|z1),
        for x [B, *event_shape], z1 [S, B, d1] and z2 [S, B, d2].
        """
        x = tf.cast(x, "float32")
        return {
            "log_px_z1": self.likelihood_x(z1, training).log_prob(x),
            "log_pz1_z2": self.conditional_prior_z1(z2, training).log_prob(z1),
            "log_pz2": self.prior_distribution().log_prob(z2),
            "log_qz1_x": self.posterior_z1(x, training).log_prob(z1),
            "log_qz2_z1": self.posterior_z2(z1, training).log_prob(z2),
        }

    def _log_joint(self, x, draws, training):
        """`objectives.Terms` of the chain, each [S, B]; kl = None (Monte Carlo).

        log_likelihood = log p(x|z1), log_prior = log p(z1|z2) + log p(z2),
        log_posterior = log q(z1|x) + log q(z2|z1). With DReG, log_posterior_stopped
        evaluates both q's with their weights stopped and the draws z1, z2 (and z1
        as the input of q(z2|z1)) still differentiable.
        """
        z1, z2 = draws["z1"], draws["z2"]
        q1 = self.posterior.distribution(draws["params1"])
        q2 = self.posterior2.distribution(draws["params2"])
        log_likelihood = self.likelihood_x(z1, training).log_prob(x)
        log_prior = (self.conditional_prior_z1(z2, training).log_prob(z1)
                     + self.prior_distribution().log_prob(z2))
        log_posterior_stopped = None
        if draws["stopped"] is not None:
            params1, params2 = draws["stopped"]
            log_posterior_stopped = (self.posterior.distribution(params1).log_prob(z1)
                                     + self.posterior2.distribution(params2).log_prob(z2))
        return objectives_lib.Terms(log_likelihood, log_prior,
                                    q1.log_prob(z1) + q2.log_prob(z2),
                                    log_posterior_stopped, None, None)

    # ----------------------------------------------------------------- the z2 "latent"

    def encode(self, x, training=False):
        """q(z2 | z1 = E q(z1|x)): the top latent along the inference net's mean path."""
        x = tf.cast(x, "float32")
        loc1, _ = self.posterior(self.encoder(x, training=training))
        return self.posterior2.distribution(self._q2_params(loc1, training))

    def encoder_parameters(self, x):
        """(loc, scale) of `encode(x)`, each [B, d2] (TFP-free, for export)."""
        loc1, _ = self.posterior(self.encoder(tf.cast(x, "float32")))
        return self._q2_params(loc1)

    def _decoder_outputs(self, z, training=False, condition=None):
        """z2 [..., d2] -> the likelihood's input at z1 = E p(z1|z2): [..., *event_shape]."""
        loc1, _ = self._p1_params(tf.convert_to_tensor(z), training)
        return self._likelihood_outputs(loc1, training)

    def sample_hierarchy(self, num_samples, temperature=1.0, seed=None):
        """Ancestral draws: z2 ~ p(z2), z1 ~ p(z1|z2) (both scales times T), and E p(x|z1).

        Returns (z2 [n, d2], z1 [n, d1], images [n, *event_shape]). `sample` instead
        decodes z1 = E p(z1|z2), the map an exported decoder computes.
        """
        z2 = self.sample_latents(num_samples, temperature, seed)
        loc1, scale1 = self._p1_params(z2)
        noise_seed = self._sample_seed if seed is None else int(seed) + 1
        z1 = self.conditional_prior.reparameterize(
            (loc1, float(temperature) * scale1),
            keras.random.normal(tf.shape(loc1), seed=noise_seed))
        return z2, z1, self.likelihood.mean(self._likelihood_outputs(z1))

    # ----------------------------------------------------------------- config

    def _config(self):
        return {"latent_dims": list(self.latent_dims), "event_shape": list(self.event_shape),
                "hidden_units": [list(u) for u in self.hidden_units],
                **self._serialized("prior", "likelihood", "objective"),
                **self._attributes("activation", "analytic_kl", "beta", "warmup_steps",
                                   "gradient_estimator", "seed", "min_scale")}


def _defaults():
    parameters = inspect.signature(HierarchicalVAE.__init__).parameters
    return {key: parameters[key].default for key in ("latent_dims", "hidden_units", "activation")}


#: The IWAE paper's two-stochastic-layer net (Burda et al., 2016, section 5): the defaults.
PRESETS = {"iwae": _defaults()}

__all__ = ["HierarchicalVAE", "PRESETS"]
