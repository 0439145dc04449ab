r"""The streaming engine of `keras_vae.evaluation`: k importance samples, chunk by chunk.

For each batch of examples the k samples z_s ~ q(z|x) are drawn `chunk_size` at a
time; only running sums per example are kept, in float64:

```none
lse                 logsumexp_s log w_s
lse2                logsumexp_s 2 log w_s
sum_log_likelihood  sum_s log p(x|z_s)
sum_kl              sum_s (log q(z_s|x) - log p(z_s)), or k * KL(q || p) where analytic
```

so memory holds one chunk, [chunk_size, batch_size, *event_shape], whatever k.
"""

import functools

import numpy as np

from keras_vae._backend import keras, tf
from keras_vae.evaluation import bernoulli_sums

#: The running sums `stream` returns, each float64 [N].
SUMS = ("lse", "lse2", "sum_log_likelihood", "sum_kl")


def stream(model, data, k, batch_size, chunk_size, seed, verbose, label, labels=None):
    """Runs the model over `data` with k samples per example in chunks.

    Args:
      model: a `keras_vae.VAE` (anything with `compute_terms` and `validate_inputs`).
      data: an array [N, *event_shape], a tuple (x, ...) or a `tf.data.Dataset`.
      k: importance samples per example.
      batch_size: examples per forward pass (arrays only).
      chunk_size: samples per example per forward pass (at most k).
      seed: int seed of the draws.
      verbose: show a progress bar over the examples.
      label: the measure's name, for the messages.
      labels: a conditional model's labels or condition vectors, one per example
        of an array (a dataset or a tuple (x, y) carries its own).

    Returns:
      A dict of float64 [N] arrays, keyed by `SUMS`.

    Raises:
      ValueError: k, chunk_size or batch_size < 1, data that do not fit the model,
        or an empty data set.
    """
    k, chunk_size = int(k), int(chunk_size)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    chunk = _chunk_function(model, keras.random.SeedGenerator(seed))
    parts = {name: [] for name in SUMS}
    progbar = keras.utils.Progbar(length(data), unit_name="example") if verbose else None
    done = 0
    for x, condition in labelled_batches(model, data, labels, batch_size, label):
        chunk_of = chunk if condition is None else functools.partial(chunk, condition=condition)
        for name, values in _stream_batch(chunk_of, x, k, min(chunk_size, k)).items():
            parts[name].append(values)
        done += int(x.shape[0])
        if progbar is not None:
            progbar.update(done)
    if not parts["lse"]:
        raise ValueError(f"{label}: the data set is empty.")
    return {name: np.concatenate(values) for name, values in parts.items()}


def _chunk_function(model, seed_generator, fast=None):
    """A tf.function (x, num_samples) -> the four sums of one chunk of samples, [B] each.

    With `fast` (default: wherever `bernoulli_sums.covers(model)`), log p(x|z) of a
    Bernoulli model comes from the fused kernel of `bernoulli_sums`; the draws are
    the same (the model's `_posterior_draws` with the same seed generator).
    """
    fast = bernoulli_sums.covers(model) if fast is None else bool(fast)

    @tf.function(reduce_retracing=True)
    def chunk(x, num_samples, condition=None):
        given = {} if condition is None else {"condition": condition}
        if fast and condition is None:
            terms = bernoulli_sums.terms(model, x, num_samples, seed_generator)
        else:
            terms = model.compute_terms(x, num_samples=num_samples, training=False,
                                        seed=seed_generator, **given)
        log_w = terms.log_weights()
        if terms.kl is not None:
            kl = tf.cast(num_samples, "float32") * terms.kl
        else:
            kl = tf.reduce_sum(terms.log_posterior - terms.log_prior, axis=0)
        return (tf.reduce_logsumexp(log_w, axis=0), tf.reduce_logsumexp(2.0 * log_w, axis=0),
                tf.reduce_sum(terms.log_likelihood, axis=0), kl)

    return chunk


def _stream_batch(chunk, x, k, chunk_size):
    """The running sums of one batch over k samples, `chunk_size` at a time (float64)."""
    n = int(x.shape[0])
    sums = {"lse": np.full(n, -np.inf), "lse2": np.full(n, -np.inf),
            "sum_log_likelihood": np.zeros(n), "sum_kl": np.zeros(n)}
    remaining = k
    while remaining > 0:
        size = min(chunk_size, remaining)
        c_lse, c_lse2, c_ll, c_kl = (t.numpy().astype("float64") for t in chunk(x, size))
        sums["lse"] = np.logaddexp(sums["lse"], c_lse)
        sums["lse2"] = np.logaddexp(sums["lse2"], c_lse2)
        sums["sum_log_likelihood"] += c_ll
        sums["sum_kl"] += c_kl
        remaining -= size
    return sums


def batches(model, data, batch_size):
    """Yields float32 tensors [B, *event_shape] from an array or a tf.data.Dataset.

    An array is checked whole by `model.validate_inputs`, a dataset by its first batch.

    Raises:
      ValueError: batch_size < 1, or data that do not fit the model.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(data, tf.data.Dataset):
        first = True
        for batch in data:
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if first:
                model.validate_inputs(x.numpy(), "the first batch of data")
                first = False
            yield tf.cast(x, "float32")
        return
    array = _features(data)
    array = array.numpy() if hasattr(array, "numpy") else np.asarray(array)
    model.validate_inputs(array, "data")
    array = array.astype("float32", copy=False)
    for start in range(0, len(array), int(batch_size)):
        yield tf.constant(array[start:start + int(batch_size)])


def labelled_batches(model, data, labels, batch_size, label="data"):
    """Yields (x [B, *event_shape], c(y) [B, c] or None): `batches` with the condition.

    An unconditional model gets None (its labels, if any, are ignored). A
    conditional one takes `labels` beside an array, or the y of a tuple (x, y) or
    of a dataset's (x, y) batches.

    Raises:
      ValueError: a conditional model without labels, or labels that do not fit.
    """
    if not getattr(model, "is_conditional", False):
        for x in batches(model, data, batch_size):
            yield x, None
        return
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if y is None:
                raise ValueError(f"{label}: the model is conditional; give a dataset of "
                                 "(x, y) batches.")
            model.validate_inputs(x.numpy(), "a batch of data")
            yield tf.cast(x, "float32"), model.condition_vector(y.numpy())
        return
    if labels is None and isinstance(data, (tuple, list)) and len(data) > 1:
        labels = data[1]
    if labels is None:
        raise ValueError(f"{label}: the model is conditional "
                         f"({model.condition.describe()}): give labels=, one per example, "
                         "to estimate log p(x|y).")
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if len(labels) != length(data):
        raise ValueError(f"{label}: {len(labels)} labels for {length(data)} examples.")
    vectors = model.condition_vector(labels).numpy()
    for start, x in zip(range(0, len(vectors), int(batch_size)),
                        batches(model, data, batch_size)):
        yield x, tf.constant(vectors[start:start + int(batch_size)])


def length(data):
    """The number of examples of an array or tuple (x, ...); None for a dataset."""
    if isinstance(data, tf.data.Dataset):
        return None
    return len(_features(data))


def _features(data):
    """x of an array or of a tuple / list (x, y, ...)."""
    if isinstance(data, (tuple, list)) and len(data) and hasattr(data[0], "shape"):
        return data[0]
    return data


__all__ = ["SUMS", "stream", "batches", "labelled_batches", "length"]
