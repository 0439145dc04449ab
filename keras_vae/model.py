r"""The variational autoencoder: a subclassed `keras.Model` whose densities are TFP distributions.

```none
x --encoder--> posterior head --> q(z|x)          z_s = loc + scale * eps_s  (reparameterised)
z --decoder--> likelihood head --> p(x|z)         p(z): the prior
log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x)                  [S, B]
loss = -objective(log w)   (ELBO, IWAE, MIWAE, PIWAE, CIWAE; objectives.py)
```

Training goes through plain `model.fit`: a custom `train_step` computes the
objective's gradients (one set, or separate encoder and decoder sets for PIWAE and
DReG), scales the loss by the global batch for `tf.distribute`, skips any step
whose loss or gradients are not finite, and logs the bounds' true values.
"""

import warnings

import numpy as np

from keras_vae import likelihoods as likelihoods_lib
from keras_vae import names, networks
from keras_vae import objectives as objectives_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae import priors as priors_lib
from keras_vae._backend import keras, tf, tfd

#: The names of `names.GRADIENT_ESTIMATORS` at import (kept for callers of this name).
GRADIENT_ESTIMATORS = names.GRADIENT_ESTIMATORS.names()


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(keras.Model):
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

    Example:

    ```python
    import keras_vae
    model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae",
                          objective=keras_vae.objectives.IWAE(k=5))
    model.initialize_output_bias(x_train)
    model.compile(optimizer="adam")
    model.fit(x_train, epochs=10, batch_size=100, validation_data=(x_test,))
    images = model.sample(16, temperature=0.8, seed=1)
    ```
    """

    def __init__(self, latent_dim=None, event_shape=(28, 28, 1), encoder="mlp", decoder=None,
                 prior="normal", likelihood="bernoulli", posterior=None, objective="elbo",
                 analytic_kl=True, beta=1.0, warmup_steps=0, gradient_estimator="standard",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(s) for s in event_shape)
        if isinstance(encoder, str):
            preset = encoder
            networks.check_preset(preset)
            latent_dim = latent_dim or networks.PRESETS[preset]["latent_dim"]
            self.encoder = networks.build_encoder(preset, self.event_shape)
            decoder = preset if decoder is None else decoder
        elif isinstance(encoder, dict):
            self.encoder = keras.saving.deserialize_keras_object(encoder)
        else:
            self.encoder = encoder
        if latent_dim is None:
            raise ValueError("latent_dim is required when the encoder is not a preset name.")
        self.latent_dim = int(latent_dim)
        if isinstance(decoder, str):
            self.decoder = networks.build_decoder(decoder, self.latent_dim, self.event_shape)
        elif isinstance(decoder, dict):
            self.decoder = keras.saving.deserialize_keras_object(decoder)
        elif decoder is None:
            raise ValueError("decoder is required when the encoder is not a preset name.")
        else:
            self.decoder = decoder

        self.posterior = posteriors_lib.get(posterior, self.latent_dim)
        self.prior = priors_lib.get(prior, self.latent_dim, self.event_shape)
        self.likelihood = likelihoods_lib.get(likelihood, self.event_shape)
        if isinstance(objective, dict) and "class_name" not in objective:
            objective = objectives_lib.get(objective.pop("name"), **objective)
        self.objective = objectives_lib.get(objective)
        self.analytic_kl = bool(analytic_kl)
        self.beta = float(beta)
        self.warmup_steps = int(warmup_steps)
        self.gradient_estimator = names.GRADIENT_ESTIMATORS.canonical(gradient_estimator)
        if self.beta < 0 or self.warmup_steps < 0:
            raise ValueError(f"beta and warmup_steps must be >= 0, got {beta}, {warmup_steps}.")
        if getattr(self.objective, "free_bits", 0) > 0 and not isinstance(
            self.prior, priors_lib.StandardNormalPrior
        ):
            raise ValueError("free bits need a factorised prior: use prior='normal'.")
        self.seed = seed
        self._noise_seed = keras.random.SeedGenerator(seed, name="noise_seed")
        self._sample_seed = keras.random.SeedGenerator(
            None if seed is None else seed + 1, name="sample_seed"
        )
        self._trackers = {}
        for name in self._metric_names():
            self._trackers[name] = keras.metrics.Mean(name=name)
        self.nonfinite_steps = keras.Variable(0, dtype="int64", trainable=False,
                                              aggregation="only_first_replica",
                                              name="nonfinite_steps")
        self.build()

    # ----------------------------------------------------------------- building

    def build(self, input_shape=None):
        if self.built:
            return
        shape = (None,) + self.event_shape
        # Sub-layers deserialised by load_model arrive built (and locked): build
        # only the others, or adding their weights again fails.
        if not self.encoder.built:
            self.encoder.build(shape)
        features = self.encoder.compute_output_shape(shape)
        for layer, layer_shape in ((self.posterior, features),
                                   (self.decoder, (None, self.latent_dim)),
                                   (self.likelihood, (None,) + self.event_shape),
                                   (self.prior, None)):
            if not layer.built:
                layer.build(layer_shape)
        self.built = True

    def _metric_names(self):
        names = ["loss", "elbo", "reconstruction", "kl"]
        if self.objective.num_samples > 1:
            names.append(self.bound_name)
        if self.objective.name not in ("elbo", "iwae", "piwae"):
            names.append(self.objective.name)
        return names

    @property
    def bound_name(self):
        """The logged importance-weighted bound, 'iwae_S' with S the samples per example."""
        return f"iwae_{self.objective.num_samples}"

    @property
    def metrics(self):
        return list(self._trackers.values())

    # ----------------------------------------------------------------- densities

    def encode(self, x, training=False):
        """q(z|x): a TFP distribution with batch shape [B] and event shape [d]."""
        return self.posterior.distribution(self.posterior(self.encoder(x, training=training)))

    def decode(self, z, training=False):
        """p(x|z): a TFP distribution over examples; z of shape [..., d]."""
        return self.likelihood.distribution(self._decoder_outputs(z, training))

    def decoder_parameters(self, z):
        """The likelihood's parameters for z [N, d] as a dict of tensors, with 'mean'.

        E.g. {'mean', 'probs', 'logits'} for a Bernoulli likelihood. This is what an
        exported decoder returns, so it uses no TFP at all.
        """
        outputs = self._decoder_outputs(z)
        parameters = dict(self.likelihood.parameters(outputs))
        parameters["mean"] = self.likelihood.mean(outputs)
        return parameters

    def encoder_parameters(self, x):
        """The posterior's parameters (loc, scale), each [B, d], for x [B, *event_shape]."""
        return self.posterior(self.encoder(tf.cast(x, "float32")))

    def prior_distribution(self):
        """p(z): a TFP distribution with event shape [d]."""
        return self.prior.distribution(encode=self.encode)

    def _decoder_outputs(self, z, training=False):
        z = tf.convert_to_tensor(z)
        lead = tf.shape(z)[:-1]
        flat = tf.reshape(z, [-1, self.latent_dim])
        out = self.likelihood(self.decoder(flat, training=training))
        return tf.reshape(out, tf.concat([lead, self.event_shape], axis=0))

    def compute_terms(self, x, num_samples=None, training=False, seed=None):
        """One forward pass: the per-sample log-densities of S draws z ~ q(z|x).

        Returns an `objectives.Terms` with [S, B] log p(x|z), log p(z), log q(z|x)
        (and, where needed, analytic KL and the DReG terms).
        """
        x = tf.cast(x, "float32")
        num_samples = num_samples or self.objective.num_samples
        params = self.posterior(self.encoder(x, training=training))
        q = self.posterior.distribution(params)
        loc, scale = params
        shape = tf.concat([[num_samples], tf.shape(loc)], axis=0)
        eps = keras.random.normal(shape, seed=seed if seed is not None else self._noise_seed)
        z = loc + scale * eps  # the reparameterisation trick (Kingma & Welling, 2014)
        p_z = self.prior_distribution()
        p_x = self.decode(z, training=training)
        log_likelihood = p_x.log_prob(x)
        log_prior = p_z.log_prob(z)
        log_posterior = q.log_prob(z)
        log_posterior_stopped = None
        if self.gradient_estimator == "dreg":
            stopped = self.posterior.distribution(tf.nest.map_structure(tf.stop_gradient, params))
            log_posterior_stopped = stopped.log_prob(z)
        kl = self._analytic_kl(q, p_z) if self.analytic_kl else None
        kl_per_dim = None
        if getattr(self.objective, "free_bits", 0) > 0:
            if self.analytic_kl:
                kl_per_dim = tfd.kl_divergence(q.distribution, p_z.distribution)
            else:
                kl_per_dim = tf.reduce_mean(
                    q.distribution.log_prob(z) - p_z.distribution.log_prob(z), axis=0
                )
        return objectives_lib.Terms(log_likelihood, log_prior, log_posterior,
                                    log_posterior_stopped, kl, kl_per_dim)

    @staticmethod
    def _analytic_kl(q, p):
        try:
            return tfd.kl_divergence(q, p)
        except NotImplementedError:
            return None

    # ----------------------------------------------------------------- training

    def _split_variables(self):
        encoder_side = {id(v) for v in self.encoder.trainable_variables}
        encoder_side |= {id(v) for v in self.posterior.trainable_variables}
        return [id(v) in encoder_side for v in self.trainable_variables]

    def kl_weight(self):
        step = self.optimizer.iterations if self.optimizer is not None else 0
        return objectives_lib.kl_weight_schedule(step, self.beta, self.warmup_steps)

    def train_step(self, data):
        x = _features(data)
        dreg = self.gradient_estimator == "dreg"
        variables = self.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            terms = self.compute_terms(x, training=True)
            decoder_value, encoder_value = self.objective.surrogates(
                terms, self.kl_weight(), dreg=dreg
            )
            regularization = tf.nn.scale_regularization_loss(
                tf.add_n([tf.cast(l, "float32") for l in self.losses] or [0.0])
            )
            loss = tf.nn.compute_average_loss(-decoder_value) + regularization
            scaled = self.optimizer.scale_loss(loss)
            if encoder_value is not decoder_value:
                encoder_loss = tf.nn.compute_average_loss(-encoder_value) + regularization
                encoder_scaled = self.optimizer.scale_loss(encoder_loss)
        if encoder_value is decoder_value:
            grads = tape.gradient(scaled, variables)
        else:
            on_encoder = self._split_variables()
            dec_vars = [v for v, e in zip(variables, on_encoder) if not e]
            enc_vars = [v for v, e in zip(variables, on_encoder) if e]
            dec_grads = iter(tape.gradient(scaled, dec_vars))
            enc_grads = iter(tape.gradient(encoder_scaled, enc_vars))
            grads = [next(enc_grads) if e else next(dec_grads) for e in on_encoder]
        del tape
        self._apply_if_finite(loss, grads, variables)
        return self._update_metrics(terms, decoder_value)

    def test_step(self, data):
        x = _features(data)
        terms = self.compute_terms(x, training=False)
        value, _ = self.objective.surrogates(terms, self.beta)
        return self._update_metrics(terms, value)

    def _update_metrics(self, terms, value):
        self._trackers["loss"].update_state(-value)
        self._trackers["elbo"].update_state(
            terms.reconstruction() - terms.kl_divergence()
        )
        self._trackers["reconstruction"].update_state(terms.reconstruction())
        self._trackers["kl"].update_state(terms.kl_divergence())
        if self.bound_name in self._trackers:
            self._trackers[self.bound_name].update_state(
                objectives_lib.iwae_bound(terms.log_weights())
            )
        if self.objective.name in self._trackers:
            self._trackers[self.objective.name].update_state(self.objective.bound(terms))
        results = {name: t.result() for name, t in self._trackers.items()}
        if isinstance(self.distribute_strategy,
                      tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces logs across workers with a MEAN over axis 0, which
            # fails on scalars (see DESIGN.md): hand it shape-[1] tensors.
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def _apply_if_finite(self, loss, grads, variables):
        """Applies the update only if the loss and every gradient are finite.

        A skipped step leaves weights and optimizer state untouched and counts in
        `nonfinite_steps`; the `fit` guard then stops training. Mixed-float16
        overflow is left to Keras's LossScaleOptimizer, which skips such steps
        itself and lowers the scale.
        """
        optimizer = self.optimizer
        finite = tf.math.is_finite(loss)
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            finite = tf.logical_and(
                finite,
                tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]),
            )
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            bad = replica.all_reduce("sum", tf.cast(tf.logical_not(finite), "float32"))
            finite = tf.equal(bad, 0.0)
        self.nonfinite_steps.assign_add(tf.cast(tf.logical_not(finite), "int64"))
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer.apply(grads, variables)
            return
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: _apply(optimizer, grads, variables), lambda: tf.constant(False))
            return

        def cross_replica(distribution, grads, variables, finite):
            ok = distribution.experimental_local_results(finite)[0]

            def apply():
                distribution.extended.call_for_each_replica(
                    _apply, args=(optimizer, grads, variables)
                )
                return tf.constant(True)

            # A cond in cross-replica context: a branch calling merge_call may not
            # sit in a replica-context cond (as Keras's LossScaleOptimizer does).
            tf.cond(ok, apply, lambda: tf.constant(False))

        replica.merge_call(cross_replica, args=(grads, variables, finite))

    # ----------------------------------------------------------------- fit / evaluate

    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, after checking the data and with the non-finite guard.

        The data are checked (shape, dtype, NaN/Inf, the likelihood's support)
        before the first step; a non-finite loss stops training with a message,
        keeping the weights of the last finite step.
        """
        self.validate_inputs(x, "x")
        if validation_data is not None:
            self.validate_inputs(_features(validation_data) if isinstance(validation_data, tuple)
                                 else validation_data, "validation_data")
        callbacks = list(callbacks or [])
        callbacks.append(StopOnNonFiniteLoss())
        return super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data,
                           **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.validate_inputs(x, "x")
        return super().evaluate(x, y, *args, **kwargs)

    def validate_inputs(self, x, name="x"):
        """Raises ValueError if `x` does not fit the model: shape, dtype, NaN/Inf, support.

        Arrays are checked whole; a `tf.data.Dataset` by its first batch.
        """
        if x is None:
            return
        if isinstance(x, tf.data.Dataset):
            for batch in x.take(1):
                self.validate_inputs(_features(batch).numpy(), f"the first batch of {name}")
            return
        if isinstance(x, (tuple, list)) and len(x) and not np.isscalar(x[0]):
            x = x[0]
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            return  # generators, PyDatasets: checked only by the graph
        array = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"{name} has dtype {array.dtype}; expected a numeric array.")
        if tuple(array.shape[1:]) != self.event_shape:
            raise ValueError(
                f"{name} has shape {tuple(array.shape)}: examples of shape "
                f"{tuple(array.shape[1:])}, but the model expects {self.event_shape} "
                f"(batch first, e.g. (N,) + {self.event_shape})."
            )
        self.likelihood.validate(array, name)

    # ----------------------------------------------------------------- user API

    def call(self, x, training=False):
        """The reconstruction mean: E p(x | z = E q(z|x))."""
        loc, _ = self.posterior(self.encoder(x, training=training))
        return self.likelihood.mean(self._decoder_outputs(loc, training))

    def reconstruct(self, x, sample=False, seed=None):
        """Decodes the posterior mean of x (or a posterior draw, with sample=True)."""
        self.validate_inputs(x, "x")
        q = self.encode(tf.cast(x, "float32"))
        z = q.mean()
        if sample:
            z = z + q.stddev() * keras.random.normal(tf.shape(z), seed=self._seed(seed))
        return self.likelihood.mean(self._decoder_outputs(z))

    def sample_latents(self, num_samples, temperature=1.0, seed=None):
        """Draws z [n, d] from the prior at a temperature (the scale times T)."""
        if int(num_samples) <= 0:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
        if float(temperature) < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}.")
        return self.prior.sample(int(num_samples), float(temperature), seed=self._seed(seed),
                                 encode=self.encode)

    def sample(self, num_samples, temperature=1.0, seed=None):
        """Mean images of p(x|z) for z drawn from the prior: [n, *event_shape]."""
        z = self.sample_latents(num_samples, temperature, seed)
        return self.likelihood.mean(self._decoder_outputs(z))

    def interpolate(self, x_a, x_b, steps=8, method="linear"):
        """Decodes a path between the posterior means of x_a and x_b.

        `method` is 'linear' or 'slerp' (spherical, which keeps the norm typical
        of a Gaussian prior; White, 2016). Single examples give
        [steps, *event_shape]; batches [B, steps, *event_shape].
        """
        if method not in ("linear", "slerp"):
            raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}.")
        if int(steps) < 2:
            raise ValueError(f"steps must be >= 2, got {steps!r}.")
        single = np.ndim(x_a) == len(self.event_shape)
        x_a, x_b = (np.asarray(v, "float32")[None] if single else np.asarray(v, "float32")
                    for v in (x_a, x_b))
        self.validate_inputs(x_a, "x_a")
        self.validate_inputs(x_b, "x_b")
        z_a = self.encode(x_a).mean()
        z_b = self.encode(x_b).mean()
        t = tf.reshape(tf.linspace(0.0, 1.0, int(steps)), [1, -1, 1])
        path = (slerp if method == "slerp" else lerp)(z_a[:, None], z_b[:, None], t)
        images = self.likelihood.mean(self._decoder_outputs(path))
        return images[0] if single else images

    def initialize_output_bias(self, x):
        """Sets the decoder's output bias to the logit of the mean training pixel (Burda et al.).

        For a Gaussian likelihood the bias is set to the mean itself.
        """
        self.build()
        layer = networks.output_layer(self.decoder)
        x = np.asarray(x, "float64")
        bias_shape = tuple(layer.bias.shape)
        mean = x.mean(axis=0).reshape(-1)
        if bias_shape != mean.shape:
            mean = x.reshape(-1, bias_shape[-1]).mean(axis=0)
        if isinstance(self.likelihood, (likelihoods_lib.BernoulliLikelihood,
                                        likelihoods_lib.ContinuousBernoulliLikelihood)):
            mean = np.clip(mean, 1e-3, 1 - 1e-3)
            mean = np.log(mean) - np.log1p(-mean)
        layer.bias.assign(mean.astype("float32"))

    def _seed(self, seed):
        return self._sample_seed if seed is None else int(seed)

    # ----------------------------------------------------------------- config

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            event_shape=list(self.event_shape),
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            prior=keras.saving.serialize_keras_object(self.prior),
            likelihood=keras.saving.serialize_keras_object(self.likelihood),
            posterior=keras.saving.serialize_keras_object(self.posterior),
            objective=keras.saving.serialize_keras_object(self.objective),
            analytic_kl=self.analytic_kl,
            beta=self.beta,
            warmup_steps=self.warmup_steps,
            gradient_estimator=self.gradient_estimator,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "prior", "likelihood", "posterior", "objective"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _apply(optimizer, grads, variables):
    optimizer.apply(grads, variables)
    return tf.constant(True)


def _features(data):
    """x from a batch that may be x, (x,), (x, y) or (x, y, sample_weight)."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x


def lerp(z_a, z_b, t):
    """(1 - t) z_a + t z_b."""
    return (1.0 - t) * z_a + t * z_b


def slerp(z_a, z_b, t, eps=1e-7):
    """Spherical interpolation; falls back to lerp where the angle is ~0."""
    dot = tf.reduce_sum(z_a * z_b, -1, keepdims=True)
    norms = tf.norm(z_a, axis=-1, keepdims=True) * tf.norm(z_b, axis=-1, keepdims=True)
    omega = tf.acos(tf.clip_by_value(dot / tf.maximum(norms, eps), -1.0, 1.0))
    sin = tf.sin(omega)
    safe = sin > 1e-4
    sin = tf.where(safe, sin, 1.0)
    spherical = (tf.sin((1.0 - t) * omega) * z_a + tf.sin(t * omega) * z_b) / sin
    return tf.where(safe, spherical, lerp(z_a, z_b, t))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first skipped (non-finite) step and says so.

    The model skips such steps itself, so its weights stay those of the last
    finite step. Added by `VAE.fit`.
    """

    def on_train_begin(self, logs=None):
        self._start = int(self.model.nonfinite_steps.numpy())

    def on_train_batch_end(self, batch, logs=None):
        skipped = int(self.model.nonfinite_steps.numpy()) - self._start
        if skipped > 0 and not self.model.stop_training:
            self.model.stop_training = True
            message = (
                f"keras_vae: non-finite loss or gradients at batch {batch}: training "
                f"stopped; the weights are those of the last finite step "
                f"({skipped} step(s) skipped). Lower the learning rate, check the data, "
                "or use a likelihood scale floor."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(message)
