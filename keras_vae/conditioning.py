r"""Conditional models: the condition y of q(z|x, y), p(x|z, y) and p(z|y), as one vector.

```none
integer labels y in {0..C-1}        c(y) = one_hot(y, C)                 [B, C]
a condition y [B, *condition_shape]  c(y) = reshape(y, [B, c])            [B, c], c = prod(shape)
q(z|x, y)   the posterior head on concat(encoder(x), c(y))
p(x|z, y)   the decoder on concat(z, c(y))
p(z|y)      optional: priors.ClassConditionalPrior, N(c(y) M, diag(softplus(c(y) R))^2)
```

A `Condition` is what a model knows of its condition (none, C classes or a
vector shape); it turns labels into the vector c(y) and checks them where they
are concrete (eagerly), so a wrong label gets an error naming it and the range.
Inside a traced step (`train_step`) the labels were checked by `fit` first.

Example:

```python
condition = Condition(num_classes=10)
condition.vector([3, 0])        # float32 [[0, 0, 0, 1, 0, ...], [1, 0, ...]]
```

References:
  K. Sohn, H. Lee, X. Yan. Learning Structured Output Representation using Deep
    Conditional Generative Models. NeurIPS 2015 (the conditional VAE).
"""

import numpy as np

from keras_vae import validation
from keras_vae._backend import keras, tf


class Condition:
    """A model's condition: none, `num_classes` integer labels, or vectors of `shape`.

    Args:
      num_classes: C >= 2 for integer labels 0..C-1, or None.
      shape: the shape of one condition vector, or None. At most one of the two.

    Raises:
      ValueError: both given, C < 2, or a shape with a non-positive size.
    """

    def __init__(self, num_classes=None, shape=None):
        if num_classes is not None and shape is not None:
            raise ValueError("give num_classes (integer labels) or condition_shape (a real "
                             f"vector), not both: got {num_classes!r} and {shape!r}.")
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
        self.num_classes = None if num_classes is None else int(num_classes)
        if shape is not None:
            shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
            if not shape or min(shape) <= 0:
                raise ValueError(f"condition_shape must be positive sizes, got {shape!r}.")
        self.shape = shape
        self.dim = self.num_classes or (int(np.prod(shape)) if shape else 0)

    @property
    def is_conditional(self):
        return self.dim > 0

    def describe(self):
        """'num_classes=C', 'condition_shape=(...)' or 'unconditional', for messages."""
        if self.num_classes:
            return f"num_classes={self.num_classes}"
        return f"condition_shape={self.shape}" if self.shape else "unconditional"

    def config(self):
        """The constructor keys of the condition: {} for an unconditional model."""
        if not self.is_conditional:
            return {}
        return {"num_classes": self.num_classes,
                "condition_shape": None if self.shape is None else list(self.shape)}

    def vector(self, y, name="labels"):
        """c(y), float32 [B, c]: one-hot labels, or the condition vectors flattened.

        Integer labels [B] (or [B, 1]) become one-hot; vectors [B, c] pass as they
        are (so the map is idempotent). Concrete values are checked first.

        Raises:
          ValueError: an unconditional model, or labels / vectors that do not fit
            (`validation.check_class_labels`, `validation.check_condition_vectors`).
        """
        if not self.is_conditional:
            raise ValueError(f"{name} given to an unconditional model (no num_classes or "
                             "condition_shape).")
        concrete = tf.executing_eagerly() and not isinstance(y, keras.KerasTensor)
        if self.num_classes:
            if concrete:
                y = validation.check_class_labels(y, self.num_classes, name=name)
            y = tf.convert_to_tensor(y)
            if y.shape.rank == 2 and y.shape[-1] == self.num_classes and y.dtype.is_floating:
                return tf.cast(y, "float32")
            y = tf.reshape(y, [-1])
            return tf.one_hot(tf.cast(y, "int32"), self.num_classes, dtype="float32")
        if concrete:
            y = validation.check_condition_vectors(y, self.shape, name=name)
        return tf.reshape(tf.cast(y, "float32"), [-1, self.dim])


class ConditionMixin:
    """A model's condition attributes (a base of `keras_vae.VAE`; needs `self.condition`)."""

    @property
    def num_classes(self):
        """C for a model conditioned on integer labels, else None."""
        return self.condition.num_classes

    @property
    def condition_dim(self):
        """The width c of the condition vector c(y): C, prod(condition_shape), or 0."""
        return self.condition.dim

    @property
    def is_conditional(self):
        """Whether the model has a condition (num_classes or condition_shape)."""
        return self.condition.is_conditional

    def condition_vector(self, y):
        """c(y), float32 [B, c]: one-hot integer labels or the condition vectors (checked).

        Raises:
          ValueError: naming a label that is not an integer in 0..C-1, or a shape
            that does not fit (`Condition.vector`).
        """
        return self.condition.vector(y)

    def _condition(self, labels, what, like=None):
        return resolve(self, labels, what, like)


def check_prior(model, conditional_prior):
    """Raises ValueError unless the model's prior and its condition agree.

    A class-conditional prior needs a conditional model of its width;
    `conditional_prior=True` replaces the default prior, not another one.
    """
    conditional = bool(getattr(model.prior, "conditional", False))
    if conditional_prior and not conditional:
        raise ValueError("conditional_prior=True learns p(z|y) instead of the prior: leave "
                         f"prior='normal' (got a {type(model.prior).__name__}).")
    if conditional and not model.is_conditional:
        raise ValueError("a class-conditional prior p(z|y) needs a conditional model: give "
                         "num_classes or condition_shape.")
    if conditional and model.prior.condition_dim != model.condition_dim:
        raise ValueError(f"the prior's condition width {model.prior.condition_dim} is not the "
                         f"model's ({model.condition.describe()}, c={model.condition_dim}).")


def join(inputs, condition):
    """concat(inputs, condition) on the last axis, the condition broadcast to inputs' lead.

    ```none
    inputs [..., B, w], condition [B, c]  ->  [..., B, w + c]
    ```

    Args:
      inputs: features [B, h] or latents [..., B, d].
      condition: [B, c] (or a shape that broadcasts to inputs' leading shape).

    Returns:
      The joined tensor, in inputs' dtype (mixed precision keeps its compute dtype).
    """
    inputs = tf.convert_to_tensor(inputs)
    condition = tf.cast(condition, inputs.dtype)
    lead = tf.shape(inputs)[:-1]
    condition = tf.broadcast_to(condition, tf.concat([lead, tf.shape(condition)[-1:]], axis=0))
    return tf.concat([inputs, condition], axis=-1)


def widen(shape, width):
    """A shape [..., w] as [..., w + width] (the input of a head that also reads c)."""
    shape = tuple(shape)
    if not width:
        return shape
    return shape[:-1] + (None if shape[-1] is None else int(shape[-1]) + int(width),)


def unpack(model, data):
    """(x, c(y) or None) of a batch x, (x,), (x, y) or (x, y, w), for `train_step`.

    An unconditional model ignores y, as it always did.

    Raises:
      ValueError: a conditional model given no y.
    """
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if not model.is_conditional:
        return x, None
    if y is None:
        raise ValueError(_missing(model, "training and evaluation batches (x, y)"))
    return x, model.condition_vector(y)


def resolve(model, labels, what, like=None):
    """The condition vector of `labels` for `what`, or None for an unconditional model.

    Args:
      model: a `keras_vae.VAE`.
      labels: None, one label / condition (repeated), or one per example (labels
        or condition vectors c(y)).
      what: the call, for the messages (e.g. 'sample').
      like: the number of examples a single label is repeated to, or an array
        whose first dimension it is; None: no repetition.

    Raises:
      ValueError: labels missing for a conditional model, labels given to an
        unconditional one, or labels that do not fit.
    """
    if labels is None:
        if model.is_conditional:
            raise ValueError(_missing(model, f"{what}(..., labels=...)"))
        return None
    if not model.is_conditional:
        raise ValueError(f"{what}: labels given to an unconditional model (it was built "
                         "without num_classes or condition_shape).")
    if like is not None and _single(model, labels):
        num = like if isinstance(like, (int, np.integer)) else np.shape(like)[0]
        labels = np.repeat(np.asarray(labels)[None], int(num), axis=0)
    return model.condition_vector(labels)


def _single(model, labels):
    if isinstance(labels, (tf.Tensor, keras.KerasTensor)) and not tf.executing_eagerly():
        return False
    ndim = np.ndim(labels)
    return ndim == 0 if model.num_classes else ndim == len(model.condition.shape)


def check_data(model, x, y, name="x"):
    """Raises ValueError unless a conditional model's data carry labels that fit.

    Arrays are checked whole, a `tf.data.Dataset` by its first batch, a tuple
    (x, y) by y. Nothing is checked for an unconditional model.

    Args:
      model: a `keras_vae.VAE`.
      x: the inputs (an array, a tuple (x, y, ...), a dataset) or None.
      y: the labels given beside an array x, or None.
      name: what `x` is, for the messages.
    """
    if not model.is_conditional or x is None:
        return
    if isinstance(x, tf.data.Dataset):
        for batch in x.take(1):
            features, labels, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if labels is None:
                raise ValueError(_missing(model, f"the batches of {name} (x, y)"))
            model.condition.vector(labels.numpy(), f"the labels of the first batch of {name}")
        return
    if isinstance(x, (tuple, list)) and len(x) > 1 and hasattr(x[0], "shape"):
        x, y = x[0], x[1]
    if not hasattr(x, "shape"):
        return
    if y is None:
        raise ValueError(_missing(model, f"{name}: fit(x, y) / evaluate(x, y)"))
    labels = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
    if labels.shape[:1] != tuple(x.shape[:1]):
        raise ValueError(f"the labels of {name} have {labels.shape[:1]} rows for "
                         f"{tuple(x.shape[:1])} examples: give one label per example.")
    model.condition.vector(labels, "y" if name == "x" else f"the labels of {name}")


def _missing(model, what):
    return (f"this model is conditional ({model.condition.describe()}): {what} needs the "
            "labels (integer labels or condition vectors, one per example).")


__all__ = ["Condition", "ConditionMixin", "check_prior", "join", "widen", "unpack", "resolve", "check_data"]
