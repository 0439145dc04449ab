r"""The variational autoencoder: a subclassed `keras.Model` whose densities are TFP distributions.

```none
x --encoder--> posterior head --> q(z|x)          z_s = loc + scale * eps_s  (reparameterised)
z --decoder--> likelihood head --> p(x|z)         p(z): the prior
log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x)                  [S, B]
loss = -objective(log w)   (ELBO, IWAE, MIWAE, PIWAE, CIWAE; objectives.py)
```

Training is plain `model.fit`: `train_step` computes the objective's gradients (separate
encoder and decoder sets for PIWAE and DReG), scales the loss by the global batch, skips a
non-finite step (`keras_vae.training`) and logs the bounds' true values.

A subclass with other densities (`keras_vae.hierarchical.HierarchicalVAE`)
overrides the hooks, not the machinery:

```none
_posterior_draws(x, S, training, seed, stop, condition)  x -> q's parameters -> draws (a dict,
                                              with the condition vector c(y) or None)
_log_joint(x, draws, training)                draws -> objectives.Terms, each [S, B]
_decoder_outputs(z, training, condition)      the latent z -> the likelihood's input
encoder_layers, _build_order(), _config()     the encoder side of the gradient split,
                                              (layer, input shape) to build, config keys
```

A conditional model (`num_classes` or `condition_shape`; `keras_vae.conditioning`)
has q(z|x, y), p(x|z, y) and, with `conditional_prior=True`, p(z|y): the hooks get the
condition vector c(y) [B, c] and log w_s = log p(x|z_s, y) + log p(z_s|y) - log q(z_s|x, y).
"""

from keras_vae import likelihoods as likelihoods_lib
from keras_vae import (batches, conditioning, divergences, fused_steps, generation, names,
                       networks, validation)
from keras_vae import training as training_lib
from keras_vae import objectives as objectives_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae import priors as priors_lib
from keras_vae._backend import keras, tf
from keras_vae.latent import lerp, slerp  # noqa: F401 (kept for callers of these names)
from keras_vae.training import StopOnNonFiniteLoss

#: The names of `names.GRADIENT_ESTIMATORS` at import (kept for callers of this name).
GRADIENT_ESTIMATORS = names.GRADIENT_ESTIMATORS.names()


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(conditioning.ConditionMixin, generation.GenerationMixin, fused_steps.FusedStepsMixin,
          keras.Model):
    r"""A variational autoencoder with TFP distributions q(z|x), p(z) and p(x|z).

    Args:
      latent_dim: the size d of z. Defaults to the preset's (mlp 16, conv 16, iwae 50).
      event_shape: the shape of one example, e.g. (28, 28, 1).
      encoder: a preset name ('mlp', 'conv', 'iwae') or a Keras layer/model
        mapping x [B, *event_shape] to features [B, h].
      decoder: a preset name, a Keras layer/model mapping z [N, d] to
        [N, *event_shape], or None for the encoder's preset.
      prior: 'normal', 'mixture', 'vamp' or a `keras_vae.priors.Prior`.
      likelihood: 'bernoulli', 'gaussian', 'gaussian_learned_scale',
        'continuous_bernoulli' or a `keras_vae.likelihoods.Likelihood`.
      posterior: None (diagonal Gaussian) or a posterior head layer.
      objective: 'elbo', 'iwae', 'miwae', 'piwae', 'ciwae' or an
        `keras_vae.objectives.Objective` (e.g. `IWAE(k=5)`).
      analytic_kl: use TFP's registered KL(q || p) where one exists (else the
        Monte-Carlo estimate is used, whatever this says).
      beta: the weight of the KL term (beta-VAE); the logged bounds ignore it.
      warmup_steps: the KL weight rises linearly from 0 to `beta` over this many
        optimizer steps (0: no warm-up).
      gradient_estimator: 'standard' or 'dreg' (doubly reparameterised encoder
        gradients, Tucker et al. 2019).
      seed: int seed of the training noise and of `sample`.
      num_classes: C for a model conditioned on integer labels 0..C-1 (one-hot c(y)).
      condition_shape: the shape of a real condition vector instead (at most one of the two).
      conditional_prior: learn p(z|y), a Gaussian per class
        (`priors.ClassConditionalPrior`), instead of `prior`.

    A conditional model fits (x, y), and `sample`, `reconstruct`, `interpolate`,
    `encode`, `decode` take `labels=` (one label, repeated, or one per example).

    Example:

    ```python
    import keras_vae
    model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae",
                          objective=keras_vae.objectives.IWAE(k=5))
    model.initialize_output_bias(x_train)
    model.compile(optimizer="adam")
    model.fit(x_train, epochs=10, batch_size=100, validation_data=(x_test,))
    images = model.sample(16, temperature=0.8, seed=1)
    cvae = keras_vae.VAE(event_shape=(28, 28, 1), num_classes=10)
    cvae.compile(optimizer="adam")
    cvae.fit(x_train, y_train, epochs=10, batch_size=100)
    threes = cvae.sample(16, labels=3, seed=1)
    ```
    """

    def __init__(self, latent_dim=None, event_shape=(28, 28, 1), encoder="mlp", decoder=None,
                 prior="normal", likelihood="bernoulli", posterior=None, objective="elbo",
                 analytic_kl=True, beta=1.0, warmup_steps=0, gradient_estimator="standard",
                 seed=None, num_classes=None, condition_shape=None, conditional_prior=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(s) for s in event_shape)
        self.condition = conditioning.Condition(num_classes, condition_shape)
        self.encoder, self.decoder, self.latent_dim = networks.resolve(
            encoder, decoder, latent_dim, self.event_shape, self.condition_dim
        )
        self.posterior = posteriors_lib.get(posterior, self.latent_dim)
        self.prior = priors_lib.get("class_conditional" if conditional_prior and prior in (
            None, "normal") else prior, self.latent_dim, self.event_shape, self.condition_dim)
        conditioning.check_prior(self, conditional_prior)
        self.likelihood = likelihoods_lib.get(likelihood, self.event_shape)
        self.objective = objectives_lib.get(objective)
        self.analytic_kl, self.beta = bool(analytic_kl), float(beta)
        self.warmup_steps = int(warmup_steps)
        self.gradient_estimator = names.GRADIENT_ESTIMATORS.canonical(gradient_estimator)
        if self.beta < 0 or self.warmup_steps < 0:
            raise ValueError(f"beta and warmup_steps must be >= 0, got {beta}, {warmup_steps}.")
        if getattr(self.objective, "free_bits", 0) > 0 and not isinstance(
                self.prior, priors_lib.StandardNormalPrior):
            raise ValueError("free bits need a factorised prior: use prior='normal'.")
        self.seed = seed
        self._noise_seed = keras.random.SeedGenerator(seed, name="noise_seed")
        self._sample_seed = keras.random.SeedGenerator(
            None if seed is None else seed + 1, name="sample_seed"
        )
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in training_lib.metric_names(self.objective)}
        self.nonfinite_steps = keras.Variable(0, dtype="int64", trainable=False,
                                              aggregation="only_first_replica",
                                              name="nonfinite_steps")
        self.build()

    # ----------------------------------------------------------------- building

    def build(self, input_shape=None):
        if self.built:
            return
        # Sub-layers load_model deserialised arrive built (and locked): adding weights fails.
        for layer, shape in self._build_order():
            if not layer.built:
                layer.build(shape() if callable(shape) else shape)
        self.built = True

    def _build_order(self):
        """(layer, input shape or a function giving it) for every sub-layer, in build order."""
        x_shape, c = (None,) + self.event_shape, self.condition_dim
        return [(self.encoder, x_shape),
                (self.posterior, lambda: conditioning.widen(
                    self.encoder.compute_output_shape(x_shape), c)),
                (self.decoder, (None, self.latent_dim + c)),
                (self.likelihood, x_shape),
                (self.prior, None)]

    @property
    def encoder_layers(self):
        """The layers whose weights get the encoder's surrogate (MIWAE for PIWAE, DReG's).

        Every other trainable weight (decoder, likelihood, prior) gets the decoder's.
        """
        return (self.encoder, self.posterior)

    @property
    def bound_name(self):
        """The logged importance-weighted bound, 'iwae_S' with S the samples per example."""
        return training_lib.bound_name(self.objective)

    @property
    def metrics(self):
        return list(self._trackers.values())

    # ----------------------------------------------------------------- densities

    def encode(self, x, training=False, labels=None):
        """q(z|x) (q(z|x, y)): a TFP distribution with batch shape [B] and event shape [d]."""
        condition = self._condition(labels, "encode", x)
        return self.posterior.distribution(self._posterior_params(x, training, condition))

    def decode(self, z, training=False, labels=None):
        """p(x|z) (p(x|z, y)): a TFP distribution over examples; z of shape [..., d]."""
        condition = self._condition(labels, "decode", z)
        return self.likelihood.distribution(self._decoder_outputs(z, training, condition))

    def decoder_parameters(self, z, condition=None):
        """The likelihood's parameters for z [N, d] (and c(y) [N, c]) as a dict, with 'mean'.

        E.g. {'mean', 'probs', 'logits'} for a Bernoulli likelihood. This is what an
        exported decoder returns, so it uses no TFP at all.
        """
        outputs = self._decoder_outputs(z, condition=self._condition(condition, "decode"))
        parameters = dict(self.likelihood.parameters(outputs))
        parameters["mean"] = self.likelihood.mean(outputs)
        return parameters

    def encoder_parameters(self, x, condition=None):
        """The posterior's (loc, scale), each [B, d], for x [B, *event] (and c(y) [B, c])."""
        condition = self._condition(condition, "encode")
        return self._posterior_params(tf.cast(x, "float32"), False, condition)

    def _posterior_params(self, x, training=False, condition=None):
        """q's parameters: the head on the encoder's features, joined with c(y) if given."""
        features = self.encoder(x, training=training)
        if condition is not None:
            features = conditioning.join(features, condition)
        return self.posterior(features)

    def prior_distribution(self, condition=None):
        """p(z) (p(z|y) for a class-conditional prior given c(y)): event shape [d]."""
        if condition is not None and self.prior.conditional:
            return self.prior.distribution(encode=self._encode_prior, condition=condition)
        return self.prior.distribution(encode=self._encode_prior)

    def _encode_prior(self, u):
        """q(z|u) of a prior's pseudo-inputs (VampPrior); a zero condition if conditional."""
        zeros = tf.zeros((tf.shape(u)[0], self.condition_dim)) if self.is_conditional else None
        return self.posterior.distribution(self._posterior_params(u, False, zeros))

    def _likelihood_outputs(self, z, training=False, condition=None):
        """The decoder of x on the latent next to x (and c(y)), z [..., d] -> [..., *event]."""
        if condition is not None:
            z = conditioning.join(z, condition)
        return networks.apply_flat(
            lambda flat: self.likelihood(self.decoder(flat, training=training)), z
        )

    def _decoder_outputs(self, z, training=False, condition=None):
        """Hook: the latent z [..., d] (and c(y)) -> the likelihood's input [..., *event]."""
        return self._likelihood_outputs(z, training, condition)

    def compute_terms(self, x, num_samples=None, training=False, seed=None,
                      gradient_estimator=None, condition=None):
        """One forward pass: the per-sample log-densities of S draws z ~ q(z|x).

        Args:
          x: a batch [B, *event_shape].
          num_samples: S (default: the objective's).
          training: the networks' training flag.
          seed: an int or a `keras.random.SeedGenerator` (default: the model's noise seed).
          gradient_estimator: 'standard' or 'dreg' (default: the model's); 'dreg'
            adds log q(z|x) with q's parameters stopped.
          condition: a conditional model's labels or condition vectors c(y), one per
            example (required then; refused by an unconditional model).

        Returns:
          An `objectives.Terms` with [S, B] log p(x|z), log p(z), log q(z|x)
          (and, where needed, analytic KL and the DReG terms).
        """
        estimator = names.GRADIENT_ESTIMATORS.canonical(gradient_estimator
                                                        or self.gradient_estimator)
        posteriors_lib.check_head(self.posterior, estimator, self.objective)
        x = tf.cast(x, "float32")
        condition = self._condition(condition, "compute_terms")
        draws = self._posterior_draws(x, num_samples or self.objective.num_samples, training,
                                      seed, stop=estimator == "dreg", condition=condition)
        return self._log_joint(x, draws, training)

    def _posterior_draws(self, x, num_samples, training, seed, stop, condition=None):
        """Hook: q's parameters for x (and c(y)) and S reparameterised draws from q.

        Returns a dict: 'z' [S, B, d], 'params' (loc, scale), 'stopped' (the
        parameters under stop_gradient when `stop`, else None), 'condition'.
        """
        params = self._posterior_params(x, training, condition)
        z = self.posterior.sample(params, num_samples, seed=self._noise(seed))
        stopped = tf.nest.map_structure(tf.stop_gradient, params) if stop else None
        return {"z": z, "params": params, "stopped": stopped, "condition": condition}

    def _log_joint(self, x, draws, training):
        """Hook: `objectives.Terms` of the draws of `_posterior_draws`."""
        z, condition = draws["z"], draws.get("condition")
        q = self.posterior.distribution(draws["params"])
        p_z = self.prior_distribution(condition)
        log_posterior_stopped = None
        if draws["stopped"] is not None:
            log_posterior_stopped = self.posterior.distribution(draws["stopped"]).log_prob(z)
        kl = divergences.analytic_kl(q, p_z) if self.analytic_kl else None
        kl_per_dim = (divergences.kl_per_unit(q, p_z, z, self.analytic_kl)
                      if getattr(self.objective, "free_bits", 0) > 0 else None)
        p_x = (self.decode(z, training=training) if condition is None  # (subclasses' decode)
               else self.decode(z, training=training, labels=condition))
        return objectives_lib.Terms(p_x.log_prob(x),
                                    p_z.log_prob(z), q.log_prob(z), log_posterior_stopped,
                                    kl, kl_per_dim)

    # ----------------------------------------------------------------- training

    def _split_variables(self):
        return training_lib.encoder_mask(self)

    def kl_weight(self):
        step = self.optimizer.iterations if self.optimizer is not None else 0
        return training_lib.kl_weight_schedule(step, self.beta, self.warmup_steps)

    def train_step(self, data):
        x, condition = conditioning.unpack(self, batches.resolve(self, data))
        variables = self.trainable_variables
        with tf.GradientTape(persistent=training_lib.needs_persistent_tape(self)) as tape:
            terms = self.compute_terms(x, training=True, condition=condition)
            decoder_value, encoder_value = self.objective.surrogates(
                terms, self.kl_weight(), dreg=self.gradient_estimator == "dreg"
            )
            loss, decoder_scaled, encoder_scaled = training_lib.scaled_losses(
                self.optimizer, self.losses, decoder_value, encoder_value
            )
        grads = training_lib.gradients(tape, decoder_scaled, encoder_scaled, variables,
                                   self._split_variables())
        del tape
        training_lib.apply_if_finite(self.optimizer, self.nonfinite_steps, loss, grads, variables,
                                     training_lib.NonFiniteHalt.of(self))
        return self._update_metrics(terms, decoder_value)

    def test_step(self, data):
        x, condition = conditioning.unpack(self, data)
        terms = self.compute_terms(x, training=False, condition=condition)
        value, _ = self.objective.surrogates(terms, self.beta)
        return self._update_metrics(terms, value)

    def _update_metrics(self, terms, value):
        results = training_lib.update_metrics(self._trackers, self.objective, terms, value)
        return training_lib.worker_logs(results, self.distribute_strategy)

    compile = training_lib.compile_with_defaults  # measured defaults (training.compile_defaults)
    compile_from_config = training_lib.compile_from_config

    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, after checking the data, with the non-finite guard, batches in-step.

        The data are checked first; a non-finite step stops training with the last finite
        step's weights; arrays and `batches.Batches` are gathered in-step (`keras_vae.batches`),
        each execution one compiled loop where XLA is on (`keras_vae.fused_steps`).
        """
        given = (x.x, x.y) if isinstance(x, batches.Batches) else (x, y)
        self.validate_inputs(given[0], "x")
        self.validate_inputs(validation_data, "validation_data")
        conditioning.check_data(self, *given, "x")
        conditioning.check_data(self, validation_data, None, "validation_data")
        callbacks = list(callbacks or []) + [StopOnNonFiniteLoss()]
        source = x if isinstance(x, batches.Batches) else (
            None if args else batches.from_fit_arguments(self, x, y, kwargs))
        if source is not None:
            (x, callbacks, kwargs), y = batches.fit_arguments(self, source, callbacks, kwargs), None
        with fused_steps.fused_fit(self, source, kwargs):
            return super().fit(x, y, *args, callbacks=callbacks,
                               validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.validate_inputs(x, "x")
        conditioning.check_data(self, x, y, "x")
        return super().evaluate(x, y, *args, **kwargs)

    def validate_inputs(self, x, name="x"):
        """Raises ValueError if `x` does not fit the model (`validation.check_model_inputs`).

        Shape, dtype, NaN/Inf and the likelihood's support; arrays are checked
        whole, a `tf.data.Dataset` by its first batch, a tuple (x, y) by x.
        """
        validation.check_model_inputs(self, x, name)

    # ----------------------------------------------------------------- seeds

    def _seed(self, seed):
        return self._sample_seed if seed is None else int(seed)

    def _noise(self, seed):
        return self._noise_seed if seed is None else seed

    # ----------------------------------------------------------------- config

    def get_config(self):
        config = super().get_config()
        config.update(self._config())
        return config

    def _config(self):
        """Hook: the keys `get_config` adds to keras.Model's (the constructor's arguments)."""
        return {"latent_dim": self.latent_dim, "event_shape": list(self.event_shape),
                **self._serialized("encoder", "decoder", "prior", "likelihood", "posterior",
                                   "objective"),
                **self._attributes("analytic_kl", "beta", "warmup_steps", "gradient_estimator",
                                   "seed"), **self._condition_config()}

    def _condition_config(self):
        """num_classes / condition_shape / conditional_prior: nothing for an unconditional model."""
        if not self.is_conditional:
            return {}
        return {**self.condition.config(), "conditional_prior": bool(self.prior.conditional)}

    def _serialized(self, *keys):
        return {key: keras.saving.serialize_keras_object(getattr(self, key)) for key in keys}

    def _attributes(self, *keys):
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_config(cls, config):
        """The model of `get_config()`: the constructor deserialises the layer dicts itself."""
        return cls(**config)


__all__ = ["VAE", "GRADIENT_ESTIMATORS", "StopOnNonFiniteLoss", "lerp", "slerp"]
