r"""Checks of user data, in one place: every check raises a ValueError naming the problem.

The support of a likelihood is the one rule for what values data may take: it is
`Likelihood.support`, asked of the likelihood's class (a registered name is looked
up in `names.LIKELIHOODS`), never a list of names.

```none
check_finite(x)                    no NaN, no Inf (the count and the first index)
check_support(x, likelihood)       model inputs: inside the likelihood's support;
                                   integer 0-255 images refused for a [0, 1] support
check_images(x, name, likelihood)  user images -> float32 [N, H, W, C]: 0-255 integers
                                   scaled, then inside the likelihood's support
check_labels(y, n)                 one label per example
check_class_labels(y, C)           a conditional model's labels: integers in 0..C-1 [B]
                                   (or one-hot / soft vectors [B, C])
check_condition_vectors(y, shape)  a conditional model's real condition vectors
check_unit_interval(x)             probabilities to binarise: finite, in [0, 1]
check_model_inputs(model, x)       what `VAE.validate_inputs` checks: dtype, the example
                                   shape, a tf.data.Dataset by its first batch, support
```
"""

import numpy as np

from keras_vae import names
from keras_vae._backend import keras, tf


def _as_array(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def check_finite(x, name="x"):
    """Raises ValueError if `x` holds NaN or Inf, saying how many and where the first is.

    Args:
      x: an array or tensor; non-float dtypes are always finite.
      name: what `x` is, for the message.

    Raises:
      ValueError: `x` has NaN or Inf values.
    """
    x = _as_array(x)
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            kind = "NaN" if np.isnan(x[first]) else "Inf"
            raise ValueError(
                f"{name} contains {int(bad.sum())} non-finite values (NaN or Inf); "
                f"the first is {kind} at index {first}."
            )


def likelihood_support(likelihood):
    """(low, high) of a likelihood's support, None for an unbounded side.

    Args:
      likelihood: a registered name (`names.LIKELIHOODS`), a `Likelihood` class or layer.

    Returns:
      A pair of floats or None, from the likelihood's `support` attribute.

    Raises:
      ValueError: an unknown name, or a likelihood with no `support`.
    """
    owner = names.LIKELIHOODS.get(likelihood) if isinstance(likelihood, str) else likelihood
    support = getattr(owner, "support", None)
    if support is None or len(support) != 2:
        raise ValueError(
            f"The likelihood {likelihood!r} has no `support` (low, high); define it on "
            "its class, as keras_vae.likelihoods.Likelihood does."
        )
    return tuple(None if bound is None else float(bound) for bound in support)


def unit_interval_likelihood(likelihood):
    """True if the likelihood's support is [0, 1] (binarised data fit it).

    Args:
      likelihood: a registered name, a `Likelihood` class or layer.
    """
    return likelihood_support(likelihood) == (0.0, 1.0)


def _label(likelihood):
    if isinstance(likelihood, str):
        return likelihood
    return likelihood.__name__ if isinstance(likelihood, type) else type(likelihood).__name__


def check_support(x, likelihood, name="x"):
    """Checks model inputs against a likelihood's support; raises ValueError naming the problem.

    Integer images above 1 are refused for a [0, 1] support (scale or binarise
    them first); then the values must be finite and inside [low, high].

    Args:
      x: an array or tensor of examples.
      likelihood: a registered name, a `Likelihood` class or layer.
      name: what `x` is, for the message.

    Raises:
      ValueError: integer 0-255 images for a [0, 1] likelihood, NaN/Inf, or values
        outside the support.
    """
    x = _as_array(x)
    low, high = likelihood_support(likelihood)
    label = _label(likelihood)
    if high == 1.0 and np.issubdtype(x.dtype, np.integer) and x.size and x.max() > 1:
        raise ValueError(
            f"{name} holds integer values up to {int(x.max())} (dtype {x.dtype}); the "
            f"{label} likelihood needs values in [0, 1]: divide 0-255 "
            "images by 255 or binarise them (keras_vae.data.binarize)."
        )
    check_finite(x, name)
    if x.size == 0:
        return
    if low is not None and x.min() < low or high is not None and x.max() > high:
        raise ValueError(
            f"{name} has values in [{float(x.min())!r}, {float(x.max())!r}], outside the "
            f"support [{low}, {high}] of the {label} likelihood."
        )


def check_images(x, name="x", likelihood="bernoulli"):
    r"""Checks and converts user images to float32 [N, H, W, C] for a likelihood.

    ```none
    bool                    -> 0.0 / 1.0
    integers in [0, 1]      -> as they are (binary data)
    integers in [0, 255]    -> x / 255
    floats                  -> as they are; finite; inside the likelihood's support
    [N, H, W]               -> [N, H, W, 1]
    ```

    Args:
      x: an array of images.
      name: what `x` is, for the message (e.g. the file name).
      likelihood: a registered name, a `Likelihood` class or layer: its `support`
        bounds the values.

    Returns:
      float32 images [N, H, W, C].

    Raises:
      ValueError: naming the problem (dtype, shape, empty, NaN/Inf, range).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {x.dtype}; expected numbers (uint8 or float).")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name} has shape {x.shape}; expected images [N, H, W] or [N, H, W, C] "
            "(a batch of examples first)."
        )
    if x.ndim == 4 and x.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"{name} has shape {x.shape}: {x.shape[-1]} channels; expected [N, H, W, C] "
            "with C in 1..4 (channels last)."
        )
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}).")
    x = _image_values(x, name)
    _check_image_range(x, name, likelihood)
    return x[..., None] if x.ndim == 3 else x


def _image_values(x, name):
    """The dtype rule of `check_images`: float32 values, 0-255 integers scaled."""
    if x.dtype.kind == "b":
        return x.astype("float32")
    if x.dtype.kind in "iu":
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{name} holds integers in [{low}, {high}]; integer images must be 0-255 "
                "pixels (or 0/1)."
            )
        return x.astype("float32") / (255.0 if high > 1 else 1.0)
    check_finite(x, name)  # before the cast: float64 values beyond float32 are an error too
    if np.abs(x).max() > np.finfo("float32").max:
        raise ValueError(
            f"{name} has values beyond the float32 range (max |x| {np.abs(x).max()!r})."
        )
    return x.astype("float32")


def _interval(low, high):
    left = "(-inf" if low is None else f"[{low:g}"
    return left + ", " + ("inf)" if high is None else f"{high:g}]")


def _check_image_range(x, name, likelihood):
    """The support rule of `check_images`, with a hint for 0-255 images."""
    low, high = likelihood_support(likelihood)
    needs = f"the {_label(likelihood)} likelihood needs values in {_interval(low, high)}"
    if high is not None and x.max() > high:
        hint = ": divide 0-255 images by 255" if high == 1.0 else ""
        raise ValueError(
            f"{name} has values above {high:g} (max {float(x.max())!r}); {needs}{hint}."
        )
    if low is not None and x.min() < low:
        below = "negative values" if low == 0.0 else f"values below {low:g}"
        raise ValueError(f"{name} has {below} (min {float(x.min())!r}); {needs}.")


def check_labels(y, n, name="labels"):
    """Checks labels: None, or an array of shape (n,), one per example.

    Args:
      y: the labels, or None.
      n: the number of examples.
      name: what `y` is, for the message.

    Returns:
      `y` as a numpy array (or None).

    Raises:
      ValueError: `y` does not hold one label per example.
    """
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} have shape {y.shape}; expected ({n},), one per example.")
    return y


def check_class_labels(y, num_classes, name="labels"):
    """Checks the labels of a model with `num_classes`: integers 0..C-1, or vectors [B, C].

    Args:
      y: integer labels [B] (or [B, 1]; integer-valued floats are accepted) or
        one-hot / soft label vectors [B, C].
      num_classes: C.
      name: what `y` is, for the message.

    Returns:
      int64 labels [B], or the float vectors [B, C].

    Raises:
      ValueError: a non-numeric dtype, another shape, a non-integer label or one
        outside 0..C-1 (the message names the first and the range).
    """
    y = _as_array(y)
    if y.dtype.kind not in "fiub":
        raise ValueError(f"{name} have dtype {y.dtype}; expected integer class labels.")
    if y.ndim == 2 and y.shape[1] == num_classes and y.dtype.kind == "f":
        check_finite(y, name)
        return y
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{name} have shape {y.shape}; expected (B,) integer labels in 0..{num_classes - 1} "
            f"or (B, {num_classes}) label vectors."
        )
    whole = np.isfinite(y) & (y == np.round(y)) if y.dtype.kind == "f" else np.ones(y.shape, bool)
    if not whole.all():
        i = int(np.argmin(whole))
        raise ValueError(f"{name}[{i}] = {y[i].item()!r} is not an integer class label; labels "
                         f"must be integers in 0..{num_classes - 1}.")
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"{name}[{i}] = {int(y[i])} is outside the classes 0..{num_classes - 1} "
                         f"(num_classes={num_classes}).")
    return y.astype("int64")


def check_condition_vectors(y, condition_shape, name="condition"):
    """Checks real condition vectors: numeric, finite, of shape [B, *condition_shape].

    Args:
      y: the condition vectors ([B, c] flattened is accepted too).
      condition_shape: the shape of one condition.
      name: what `y` is, for the message.

    Returns:
      `y` as a numpy array.

    Raises:
      ValueError: a non-numeric dtype, another shape, or NaN/Inf.
    """
    y = _as_array(y)
    shape = tuple(condition_shape)
    flat = (int(np.prod(shape)),)
    if y.dtype.kind not in "fiub":
        raise ValueError(f"{name} have dtype {y.dtype}; expected a numeric array.")
    if y.ndim < 1 or tuple(y.shape[1:]) not in (shape, flat):
        raise ValueError(f"{name} have shape {y.shape}; expected (B,) + {shape}, one "
                         "condition per example.")
    check_finite(y, name)
    return y


def check_unit_interval(x, name="x"):
    """Checks probabilities to binarise: finite values in [0, 1].

    Args:
      x: a numpy array.
      name: what `x` is, for the message.

    Raises:
      ValueError: NaN/Inf or values outside [0, 1].
    """
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0):
        numbers = x[~np.isnan(x)]
        low, high = (float(numbers.min()), float(numbers.max())) if numbers.size else (
            float("nan"), float("nan"))
        raise ValueError(
            f"{name} must hold values in [0, 1] to binarise (probabilities); got values in "
            f"[{low!r}, {high!r}] or NaN."
        )


def check_model_inputs(model, x, name="x"):
    """Raises ValueError if `x` does not fit the model: shape, dtype, NaN/Inf, support.

    Arrays and tensors are checked whole; a `tf.data.Dataset` by its first batch;
    of a tuple (x, y) the first element. Generators and `PyDataset`s are left to
    the graph. The support is the model's likelihood's (`model.likelihood.validate`).

    Args:
      model: a `keras_vae.VAE` (anything with `event_shape` and `likelihood`).
      x: the inputs, or None (nothing to check).
      name: what `x` is, for the message.

    Raises:
      ValueError: naming the problem.
    """
    if x is None:
        return
    if isinstance(x, tf.data.Dataset):
        for batch in x.take(1):
            features, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            check_model_inputs(model, features.numpy(), f"the first batch of {name}")
        return
    if isinstance(x, (tuple, list)) and len(x) and not np.isscalar(x[0]):
        x = x[0]
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return
    array = _as_array(x)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name} has dtype {array.dtype}; expected a numeric array.")
    event_shape = tuple(model.event_shape)
    if tuple(array.shape[1:]) != event_shape:
        raise ValueError(
            f"{name} has shape {tuple(array.shape)}: examples of shape "
            f"{tuple(array.shape[1:])}, but the model expects {event_shape} "
            f"(batch first, e.g. (N,) + {event_shape})."
        )
    model.likelihood.validate(array, name)


__all__ = [
    "check_finite", "check_support", "check_images", "check_labels", "check_class_labels",
    "check_condition_vectors", "check_unit_interval",
    "check_model_inputs", "likelihood_support", "unit_interval_likelihood",
]
