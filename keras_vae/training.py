r"""The machinery `VAE.train_step` calls: KL warm-up, split gradients, the non-finite guard.

```none
loss        = mean_B(-surrogate) / global batch  + regularisation     (tf.distribute)
gradients   theta_dec <- d loss_dec,  theta_enc <- d loss_enc            (PIWAE, DReG)
update      applied only if the loss and every gradient are finite, on every replica
```

The guard is `keras_vae.guard` (its names importable from here too): a skipped step
leaves weights and optimizer state untouched and counts in the model's
`nonfinite_steps`; `StopOnNonFiniteLoss` (added by `VAE.fit`) then stops training
with a message.
"""

import warnings

from keras_vae import objectives
from keras_vae._backend import keras, tf
# The non-finite guard, importable from here as before (its own module).
from keras_vae.guard import (  # noqa: F401
    NonFiniteHalt, all_finite, apply_if_finite, in_xla_compilation, masked_writes,
    masked_writes_cover)
# `VAE.compile`'s measured defaults, importable from here as before (their own module).
from keras_vae.compile_defaults import (  # noqa: F401
    DEFAULT_STEPS_PER_EXECUTION, compile_defaults, compile_from_config, compile_with_defaults,
    cpu_threads, default_jit_compile, distributed)


def kl_weight_schedule(step, beta=1.0, warmup_steps=0):
    """beta * min(1, step / warmup_steps): linear KL warm-up (Bowman et al., 2016).

    Args:
      step: the optimizer step (a tensor or an int).
      beta: the final weight.
      warmup_steps: the length of the ramp; 0 gives `beta` from the start.

    Returns:
      A float32 scalar tensor.
    """
    if warmup_steps <= 0:
        return tf.constant(beta, "float32")
    ramp = tf.minimum(1.0, tf.cast(step, "float32") / float(warmup_steps))
    return beta * ramp


def encoder_mask(model):
    """For each of `model.trainable_variables`: True if it belongs to `model.encoder_layers`.

    Args:
      model: a `keras_vae.VAE` (or any model with an `encoder_layers` property).

    Returns:
      A list of booleans, one per trainable variable, in order.
    """
    encoder_side = {id(v) for layer in model.encoder_layers for v in layer.trainable_variables}
    return [id(v) in encoder_side for v in model.trainable_variables]


def scaled_losses(optimizer, regularization_losses, decoder_value, encoder_value):
    """The replica losses of the two surrogates, and their optimizer-scaled versions.

    Call it inside the gradient tape. The encoder's entries are None when it shares
    the decoder's surrogate (`encoder_value is decoder_value`).

    Args:
      optimizer: the model's optimizer (`scale_loss` for loss scaling).
      regularization_losses: the model's `losses`.
      decoder_value, encoder_value: the [B] surrogates to ascend.

    Returns:
      (loss, decoder_scaled, encoder_scaled): `loss` is the unscaled decoder loss.
    """
    regularization = tf.nn.scale_regularization_loss(
        tf.add_n([tf.cast(l, "float32") for l in regularization_losses] or [0.0])
    )
    loss = tf.nn.compute_average_loss(-decoder_value) + regularization
    encoder_scaled = None
    if encoder_value is not decoder_value:
        encoder_loss = tf.nn.compute_average_loss(-encoder_value) + regularization
        encoder_scaled = optimizer.scale_loss(encoder_loss)
    return loss, optimizer.scale_loss(loss), encoder_scaled


def gradients(tape, decoder_scaled, encoder_scaled, variables, on_encoder):
    """One set of gradients, or the decoder's and encoder's sets merged in `variables` order.

    Args:
      tape: a persistent `tf.GradientTape` that recorded both losses.
      decoder_scaled: the loss every variable follows, or the decoder side's.
      encoder_scaled: the encoder side's loss, or None (one set).
      variables: the trainable variables.
      on_encoder: `encoder_mask(model)` for `variables`.

    Returns:
      A list of gradients aligned with `variables`.
    """
    if encoder_scaled is None:
        return tape.gradient(decoder_scaled, variables)
    dec_vars = [v for v, e in zip(variables, on_encoder) if not e]
    enc_vars = [v for v, e in zip(variables, on_encoder) if e]
    dec_grads = iter(tape.gradient(decoder_scaled, dec_vars))
    enc_grads = iter(tape.gradient(encoder_scaled, enc_vars))
    return [next(enc_grads) if e else next(dec_grads) for e in on_encoder]


def needs_persistent_tape(model):
    """Whether `VAE.train_step` takes two gradients from one tape (PIWAE's or DReG's split).

    Args:
      model: a `keras_vae.VAE`.

    Returns:
      True when the encoder follows its own surrogate.
    """
    own_encoder_value = (type(model.objective).encoder_value
                         is not objectives.Objective.encoder_value)
    return model.gradient_estimator == "dreg" or own_encoder_value


def bound_name(objective):
    """The logged importance-weighted bound: 'iwae_S', S the objective's samples per example."""
    return f"iwae_{objective.num_samples}"


def metric_names(objective):
    """The names a VAE training on `objective` logs, in order.

    'loss', 'elbo', 'reconstruction', 'kl'; `bound_name` when S > 1; and the
    objective's own bound when it is none of those (MIWAE, CIWAE).
    """
    names = ["loss", "elbo", "reconstruction", "kl"]
    if objective.num_samples > 1:
        names.append(bound_name(objective))
    if objective.name not in ("elbo", "iwae", "piwae"):
        names.append(objective.name)
    return names


def update_metrics(trackers, objective, terms, value):
    """Adds one batch to the `metric_names` trackers; returns their results.

    Args:
      trackers: name -> `keras.metrics.Mean`.
      objective: the model's objective.
      terms: the batch's `objectives.Terms`.
      value: the [B] training value (its negation is the loss).

    Returns:
      name -> the tracker's result.
    """
    values = [("loss", -value), ("elbo", terms.reconstruction() - terms.kl_divergence()),
              ("reconstruction", terms.reconstruction()), ("kl", terms.kl_divergence())]
    if bound_name(objective) in trackers:
        values.append((bound_name(objective), objectives.iwae_bound(terms.log_weights())))
    if objective.name in trackers:  # ELBO's bound goes to 'elbo' a second time
        values.append((objective.name, objective.bound(terms)))
    for name, tracked in values:
        trackers[name].update_state(tracked)
    return {name: t.result() for name, t in trackers.items()}


def worker_logs(results, strategy):
    """The step's logs in the shape Keras can reduce under `strategy`.

    Keras reduces logs across workers with a MEAN over axis 0, which fails on
    scalars under MultiWorkerMirroredStrategy (see DESIGN.md): there each value
    becomes a shape-[1] tensor.

    Args:
      results: name -> scalar tensor.
      strategy: the model's `distribute_strategy`.

    Returns:
      The logs dict.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return {k: tf.reshape(v, [1]) for k, v in results.items()}
    return results


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first non-finite step, says which one, and keeps the weights before it.

    The step itself skips that update and every later one of the fit
    (`apply_if_finite`'s halt), so the weights stay those of the last finite step
    even when the callback runs only once per `steps_per_execution` steps. Added
    by `VAE.fit`.
    """

    def on_train_begin(self, logs=None):
        if getattr(self.model, "_nonfinite_halt", None) is None:
            self.model._nonfinite_halt = NonFiniteHalt(self.model.distribute_strategy)
        self.model._nonfinite_halt.variable.assign(-1)
        self._start = int(self.model.nonfinite_steps.numpy())
        self._epoch, self._epoch_step = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_step = epoch, int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        skipped = int(self.model.nonfinite_steps.numpy()) - self._start
        if skipped > 0 and not self.model.stop_training:
            self.model.stop_training = True
            step = int(self.model._nonfinite_halt.variable.numpy())
            message = (
                f"keras_vae: non-finite loss or gradients at batch {step - self._epoch_step} "
                f"of epoch {self._epoch + 1} (optimizer step {step + 1}): training stopped; "
                "the weights are those of the last finite step. Lower the learning rate, "
                "check the data, or use a likelihood scale floor."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(message)


__all__ = [
    "DEFAULT_STEPS_PER_EXECUTION", "compile_defaults", "cpu_threads", "default_jit_compile",
    "distributed",
    "compile_with_defaults",
    "compile_from_config", "kl_weight_schedule", "encoder_mask",
    "scaled_losses", "gradients", "apply_if_finite", "NonFiniteHalt", "all_finite",
    "in_xla_compilation", "masked_writes", "masked_writes_cover",
    "needs_persistent_tape",
    "bound_name", "metric_names", "update_metrics", "worker_logs", "StopOnNonFiniteLoss",
]
