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

import numpy as np

from keras_vae import networks
from keras_vae import objectives as objectives_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae._backend import keras, tf
from keras_vae.model import VAE

#: The IWAE paper's two-stochastic-layer architecture (Burda et al., 2016, section 5).
PRESETS = {
    "iwae": {
        "latent_dims": (100, 50),
        "hidden_units": ((200, 200), (100, 100)),
        "activation": "tanh",
    },
}


def _mlp(input_dim, hidden_units, activation, name):
    """z [N, input_dim] -> features [N, h]: Dense layers, or the identity if there are none."""
    layers = [keras.Input(shape=(int(input_dim),))]
    layers += [keras.layers.Dense(int(u), activation=activation) for u in hidden_units]
    if len(layers) == 1:
        layers.append(keras.layers.Identity())
    return keras.Sequential(layers, name=name)


def _x_encoder(event_shape, hidden_units, activation):
    """x [B, *event_shape] -> h1: Flatten then Dense layers (the `iwae` preset's shape)."""
    layers = [keras.Input(shape=event_shape), keras.layers.Flatten()]
    layers += [keras.layers.Dense(int(u), activation=activation) for u in hidden_units]
    return keras.Sequential(layers, name="encoder")


def _x_decoder(latent_dim, event_shape, hidden_units, activation):
    """z1 [N, d1] -> [N, *event_shape]: mirrored Dense layers, then the 'logits' layer."""
    layers = [keras.Input(shape=(int(latent_dim),))]
    layers += [keras.layers.Dense(int(u), activation=activation)
               for u in reversed(hidden_units)]
    layers += [keras.layers.Dense(int(np.prod(event_shape)), name=networks.OUTPUT_LAYER_NAME),
               keras.layers.Reshape(event_shape)]
    return keras.Sequential(layers, name="decoder")


def _call_stopped(layer, *args, **kwargs):
    """`layer(*args)` with its weights under stop_gradient, the inputs still differentiable."""
    trainable = [tf.stop_gradient(v) for v in layer.trainable_variables]
    outputs, _ = layer.stateless_call(trainable, list(layer.non_trainable_variables),
                                      *args, **kwargs)
    return outputs


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
        fixed = sorted(set(kwargs) & {"latent_dim", "encoder", "decoder", "posterior",
                                      "analytic_kl"})
        if fixed:
            raise TypeError(
                f"HierarchicalVAE does not take {fixed}: its networks come from latent_dims "
                "(d1, d2), hidden_units and activation, and its KL is always Monte Carlo."
            )
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
        objective = objectives_lib.get(
            objectives_lib.get(objective.pop("name"), **objective)
            if isinstance(objective, dict) and "class_name" not in objective else objective
        )
        if getattr(objective, "free_bits", 0) > 0:
            raise ValueError(
                "free bits need a per-unit KL, which the two-layer chain does not have: "
                "use free_bits=0 (or KL warm-up) with HierarchicalVAE."
            )
        if isinstance(prior, dict):
            prior = keras.saving.deserialize_keras_object(prior)
        if isinstance(likelihood, dict):
            likelihood = keras.saving.deserialize_keras_object(likelihood)
        d1, d2 = latent_dims
        self.latent_dims = latent_dims
        self.hidden_units = hidden_units
        self.activation = activation
        self.min_scale = float(min_scale)
        # The second stochastic layer, q(z2|z1) and p(z1|z2), exists before VAE.__init__
        # builds the model (Keras tracks sub-layers set before Layer.__init__ too).
        self.encoder2 = _mlp(d1, hidden_units[1], activation, name="encoder2")
        self.posterior2 = posteriors_lib.DiagonalGaussianPosterior(
            d2, min_scale, name="posterior2"
        )
        self.decoder2 = _mlp(d2, tuple(reversed(hidden_units[1])), activation, name="decoder2")
        self.conditional_prior = posteriors_lib.DiagonalGaussianPosterior(
            d1, min_scale, name="conditional_prior"
        )
        super().__init__(
            latent_dim=d2,
            event_shape=event_shape,
            encoder=_x_encoder(event_shape, hidden_units[0], activation),
            decoder=_x_decoder(d1, event_shape, hidden_units[0], activation),
            posterior=posteriors_lib.DiagonalGaussianPosterior(d1, min_scale, name="posterior"),
            prior=prior,
            likelihood=likelihood,
            objective=objective,
            analytic_kl=False,
            beta=beta,
            warmup_steps=warmup_steps,
            gradient_estimator=gradient_estimator,
            seed=seed,
            **kwargs,
        )

    @classmethod
    def preset(cls, name="iwae", **kwargs):
        """The model with a named architecture (`PRESETS`), other arguments as given."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})

    def build(self, input_shape=None):
        if self.built:
            return
        d1, d2 = self.latent_dims
        shape = (None,) + self.event_shape
        for layer, in_shape in (
            (self.encoder, shape),
            (self.encoder2, (None, d1)),
            (self.decoder2, (None, d2)),
            (self.decoder, (None, d1)),
            (self.likelihood, shape),
        ):
            if not layer.built:
                layer.build(in_shape)
        for head, net, in_shape in ((self.posterior, self.encoder, shape),
                                    (self.posterior2, self.encoder2, (None, d1)),
                                    (self.conditional_prior, self.decoder2, (None, d2))):
            if not head.built:
                head.build(net.compute_output_shape(in_shape))
        if not self.prior.built:
            self.prior.build(None)
        self.built = True

    # ----------------------------------------------------------------- the five densities

    def _flat_call(self, fn, z, size):
        """fn on z [..., size] flattened to [N, size]; returns its outputs with the lead shape."""
        lead = tf.shape(z)[:-1]
        out = fn(tf.reshape(z, [-1, size]))

        def restore(t):
            return tf.reshape(t, tf.concat([lead, tf.shape(t)[1:]], axis=0))

        return tf.nest.map_structure(restore, out)

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
                return _call_stopped(self.posterior2, _call_stopped(self.encoder2, z,
                                                                    training=training))
        else:
            def fn(z):
                return self.posterior2(self.encoder2(z, training=training))
        return self._flat_call(fn, z1, self.latent_dims[0])

    def _p1_params(self, z2, training=False):
        def fn(z):
            return self.conditional_prior(self.decoder2(z, training=training))
        return self._flat_call(fn, z2, self.latent_dims[1])

    def _likelihood_outputs(self, z1, training=False):
        z1 = tf.convert_to_tensor(z1)
        lead = tf.shape(z1)[:-1]
        flat = tf.reshape(z1, [-1, self.latent_dims[0]])
        out = self.likelihood(self.decoder(flat, training=training))
        return tf.reshape(out, tf.concat([lead, self.event_shape], axis=0))

    def sample_posterior(self, x, num_samples=1, seed=None, training=False):
        """Draws (z1 [S, B, d1], z2 [S, B, d2]) from q(z1|x) q(z2|z1).

        One standard-normal draw of shape [S, B, d1 + d2] feeds both layers, so an
        integer `seed` gives the draws `compute_terms(x, S, seed=seed)` uses.
        """
        x = tf.cast(x, "float32")
        params1 = self.posterior(self.encoder(x, training=training))
        z1, z2, _ = self._draw(params1, num_samples, training, seed)
        return z1, z2

    def _draw(self, params1, num_samples, training, seed):
        loc1, scale1 = params1
        d1, d2 = self.latent_dims
        shape = tf.concat([[num_samples], tf.shape(loc1)[:1], [d1 + d2]], axis=0)
        eps = keras.random.normal(shape, seed=seed if seed is not None else self._noise_seed)
        eps1, eps2 = eps[..., :d1], eps[..., d1:]
        z1 = loc1 + scale1 * eps1  # reparameterised: [S, B, d1]
        params2 = self._q2_params(z1, training)
        loc2, scale2 = params2
        z2 = loc2 + scale2 * eps2  # [S, B, d2]
        return z1, z2, params2

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

    def compute_terms(self, x, num_samples=None, training=False, seed=None):
        """One forward pass through the chain: `objectives.Terms` of S draws per example.

        log_likelihood = log p(x|z1), log_prior = log p(z1|z2) + log p(z2),
        log_posterior = log q(z1|x) + log q(z2|z1), each [S, B]; kl = None (the
        Monte-Carlo KL of the whole chain is used). With DReG, log_posterior_stopped
        evaluates both q's with their weights stopped and the draws z1, z2 (and z1
        as the input of q(z2|z1)) still differentiable.
        """
        x = tf.cast(x, "float32")
        num_samples = num_samples or self.objective.num_samples
        params1 = self.posterior(self.encoder(x, training=training))
        z1, z2, params2 = self._draw(params1, num_samples, training, seed)
        q1 = self.posterior.distribution(params1)
        q2 = self.posterior2.distribution(params2)
        p1 = self.conditional_prior.distribution(self._p1_params(z2, training))
        log_likelihood = self.likelihood.distribution(
            self._likelihood_outputs(z1, training)
        ).log_prob(x)
        log_prior = p1.log_prob(z1) + self.prior_distribution().log_prob(z2)
        log_posterior = q1.log_prob(z1) + q2.log_prob(z2)
        log_posterior_stopped = None
        if self.gradient_estimator == "dreg":
            q1_stopped = self.posterior.distribution(
                tf.nest.map_structure(tf.stop_gradient, params1)
            )
            q2_stopped = self.posterior2.distribution(
                self._q2_params(z1, training, stop_weights=True)
            )
            log_posterior_stopped = q1_stopped.log_prob(z1) + q2_stopped.log_prob(z2)
        return objectives_lib.Terms(log_likelihood, log_prior, log_posterior,
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

    def _decoder_outputs(self, z, training=False):
        """z2 [..., d2] -> the likelihood's input at z1 = E p(z1|z2): [..., *event_shape]."""
        loc1, _ = self._p1_params(tf.convert_to_tensor(z), training)
        return self._likelihood_outputs(loc1, training)

    def call(self, x, training=False):
        """The reconstruction mean E p(x | z1 = E q(z1|x))."""
        loc1, _ = self.posterior(self.encoder(x, training=training))
        return self.likelihood.mean(self._likelihood_outputs(loc1, training))

    def reconstruct(self, x, sample=False, seed=None):
        """Decodes z1 = E q(z1|x) (or a draw, sample=True) through p(x|z1).

        This is the reconstruction the bound scores (log p(x|z1)); a round trip
        through the top latent is `decode(encode(x).mean())`.
        """
        self.validate_inputs(x, "x")
        q1 = self.posterior_z1(x)
        z1 = q1.mean()
        if sample:
            z1 = z1 + q1.stddev() * keras.random.normal(tf.shape(z1), seed=self._seed(seed))
        return self.likelihood.mean(self._likelihood_outputs(z1))

    def sample_hierarchy(self, num_samples, temperature=1.0, seed=None):
        """Ancestral draws: z2 ~ p(z2), z1 ~ p(z1|z2) (both scales times T), and E p(x|z1).

        Returns (z2 [n, d2], z1 [n, d1], images [n, *event_shape]). `sample` instead
        decodes z1 = E p(z1|z2), the map an exported decoder computes.
        """
        z2 = self.sample_latents(num_samples, temperature, seed)
        loc1, scale1 = self._p1_params(z2)
        noise_seed = self._sample_seed if seed is None else int(seed) + 1
        z1 = loc1 + float(temperature) * scale1 * keras.random.normal(tf.shape(loc1),
                                                                     seed=noise_seed)
        return z2, z1, self.likelihood.mean(self._likelihood_outputs(z1))

    # ----------------------------------------------------------------- training

    def _split_variables(self):
        encoder_side = set()
        for layer in (self.encoder, self.posterior, self.encoder2, self.posterior2):
            encoder_side |= {id(v) for v in layer.trainable_variables}
        return [id(v) in encoder_side for v in self.trainable_variables]

    def initialize_output_bias(self, x):
        """Sets p(x|z1)'s output bias to the logit of the mean training pixel (Burda et al.)."""
        return super().initialize_output_bias(x)

    # ----------------------------------------------------------------- config

    def get_config(self):
        config = keras.Model.get_config(self)
        config.update(
            latent_dims=list(self.latent_dims),
            event_shape=list(self.event_shape),
            hidden_units=[list(u) for u in self.hidden_units],
            activation=self.activation,
            prior=keras.saving.serialize_keras_object(self.prior),
            likelihood=keras.saving.serialize_keras_object(self.likelihood),
            objective=keras.saving.serialize_keras_object(self.objective),
            beta=self.beta,
            warmup_steps=self.warmup_steps,
            gradient_estimator=self.gradient_estimator,
            seed=self.seed,
            min_scale=self.min_scale,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("prior", "likelihood", "objective"):
            if isinstance(config.get(key), dict) and "class_name" in config[key]:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


__all__ = ["HierarchicalVAE", "PRESETS"]
