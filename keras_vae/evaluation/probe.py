r"""Linear probes: how linearly separable the classes are in the latent means of a VAE.

The probe is a multinomial logistic regression on standardised features
f = (h - mean) / std (statistics of the training features):

```none
p(y = c | f) = softmax(W f + b)_c
L(W, b)      = -(1/N) sum_n log p(y_n | f_n) + (lambda / 2) ||W||_F^2
```

a strictly convex objective, minimised by L-BFGS (memory 10, Armijo backtracking) from
W = 0, b = 0: deterministic, no random state. `linear_probe` fits it on the latent
means E q(z|x) of a model, and, as baselines, on the top-d principal components of the
pixels (d = the latent size) and on the raw pixels; it reports the test accuracies
beside chance (the largest class's share of the test set).

Example:

```python
from keras_vae import evaluation
result = evaluation.linear_probe(model, x_train, y_train, x_test, y_test)
result.latent_accuracy, result.pca_accuracy, result.pixel_accuracy
```

References:
  G. Alain and Y. Bengio. Understanding intermediate layers using linear classifier
    probes. arXiv:1610.01644, 2016.
  J. Nocedal. Updating quasi-Newton matrices with limited storage. Math. Comp., 1980.
"""

import dataclasses

import numpy as np

from keras_vae.evaluation import clustering


@dataclasses.dataclass
class LogisticRegression:
    """A fitted multinomial logistic regression (`fit_logistic_regression`)."""

    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    classes: np.ndarray  # [C]
    iterations: int

    def logits(self, features):
        f = (np.asarray(features, "float64").reshape(len(features), -1) - self.mean) / self.std
        return f @ self.weights + self.bias

    def predict(self, features):
        return self.classes[np.argmax(self.logits(features), axis=1)]

    def accuracy(self, features, labels):
        return float(np.mean(self.predict(features) == np.asarray(labels)))


def fit_logistic_regression(features, labels, l2=1e-4, max_iter=300, tol=1e-6):
    """Fits `LogisticRegression` to features [N, D] and labels [N] (any values) by L-BFGS.

    Args:
      features: [N, D] (flattened if it has more axes).
      labels: [N], at least two distinct values.
      l2: lambda, the L2 weight on W (not on b).
      max_iter: L-BFGS iterations at most.
      tol: stop when the gradient's largest entry is below it.

    Returns:
      A `LogisticRegression`.

    Raises:
      ValueError: lengths differ, a single class, or non-finite features.
    """
    f = np.asarray(features, "float64").reshape(len(features), -1)
    labels = np.asarray(labels)
    if len(f) != len(labels):
        raise ValueError(f"features and labels differ in length: {len(f)} vs {len(labels)}.")
    if not np.all(np.isfinite(f)):
        raise ValueError("features have non-finite values (NaN or Inf).")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"a probe needs at least two classes, got {classes.tolist()}.")
    mean, std = f.mean(axis=0), f.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    f = (f - mean) / std
    onehot = np.eye(len(classes))[y.ravel()]
    d, c = f.shape[1], len(classes)

    def loss_and_gradient(theta):
        w, b = theta[:d * c].reshape(d, c), theta[d * c:]
        logits = f @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        residual = (np.exp(log_p) - onehot) / len(f)
        value = -np.sum(onehot * log_p) / len(f) + 0.5 * l2 * np.sum(w * w)
        grad = np.concatenate([(f.T @ residual + l2 * w).ravel(), residual.sum(axis=0)])
        return value, grad

    theta, iterations = lbfgs(loss_and_gradient, np.zeros(d * c + c), max_iter, tol)
    return LogisticRegression(weights=theta[:d * c].reshape(d, c), bias=theta[d * c:],
                              mean=mean, std=std, classes=classes, iterations=iterations)


def lbfgs(loss_and_gradient, theta, max_iter=300, tol=1e-6, memory=10):
    """Minimises a smooth function by L-BFGS with Armijo backtracking: (theta, iterations)."""
    value, grad = loss_and_gradient(theta)
    s_list, y_list = [], []
    for iteration in range(1, int(max_iter) + 1):
        if np.max(np.abs(grad)) < tol:
            return theta, iteration - 1
        direction = -_two_loop(grad, s_list, y_list)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            s_list, y_list, direction, slope = [], [], -grad, -float(grad @ grad)
        step = 1.0
        for _ in range(30):
            new_theta = theta + step * direction
            new_value, new_grad = loss_and_gradient(new_theta)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return theta, iteration
        s, y = new_theta - theta, new_grad - grad
        if float(s @ y) > 1e-12:
            s_list.append(s)
            y_list.append(y)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        theta, value, grad = new_theta, new_value, new_grad
    return theta, int(max_iter)


def _two_loop(grad, s_list, y_list):
    """The L-BFGS product H grad from the stored pairs (Nocedal & Wright, Alg. 7.4)."""
    q, alphas = grad.copy(), []
    for s, y in zip(reversed(s_list), reversed(y_list)):
        alpha = float(s @ q) / float(y @ s)
        alphas.append(alpha)
        q -= alpha * y
    if s_list:
        q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
    for (s, y), alpha in zip(zip(s_list, y_list), reversed(alphas)):
        q += (alpha - float(y @ q) / float(y @ s)) * s
    return q


def pca(x_train, dim):
    """(mean [D], components [D, dim]) of the training rows: the top eigenvectors of the
    covariance (float64), for `project`."""
    f = np.asarray(x_train, "float64").reshape(len(x_train), -1)
    if not 1 <= int(dim) <= f.shape[1]:
        raise ValueError(f"dim must be in 1..{f.shape[1]}, got {dim}.")
    mean = f.mean(axis=0)
    centred = f - mean
    _, vectors = np.linalg.eigh(centred.T @ centred / max(len(f) - 1, 1))
    return mean, vectors[:, ::-1][:, :int(dim)]


def project(x, mean, components):
    """The PCA coordinates [N, dim] of x."""
    return (np.asarray(x, "float64").reshape(len(x), -1) - mean) @ components


@dataclasses.dataclass
class ProbeResult:
    """Test accuracies of the same linear probe on three feature sets, and chance."""

    latent_accuracy: float
    pca_accuracy: float
    pixel_accuracy: float
    chance: float
    latent_dim: int
    num_classes: int
    num_train: int
    num_test: int

    def summary(self):
        return dataclasses.asdict(self)


def linear_probe(model, x_train, y_train, x_test, y_test, l2=1e-4, max_iter=300,
                 batch_size=500, baselines=True):
    """The probe's test accuracy on the latent means, on PCA (same dim) and on pixels.

    Args:
      model: an unconditional `keras_vae.VAE`.
      x_train, y_train: the probe's training images and labels.
      x_test, y_test: its test images and labels.
      l2, max_iter: see `fit_logistic_regression`.
      batch_size: examples per encoder pass.
      baselines: also fit the PCA and pixel probes (else their accuracies are NaN).

    Returns:
      A `ProbeResult`.

    Raises:
      ValueError: a conditional model, data that do not fit it, labels of another length.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise ValueError("linear_probe: one label per example is needed "
                         f"({len(y_train)} for {len(x_train)} training, {len(y_test)} for "
                         f"{len(x_test)} test examples).")
    z_train = clustering.latent_means(model, x_train, batch_size)
    z_test = clustering.latent_means(model, x_test, batch_size)
    fit = lambda a, b: fit_logistic_regression(a, b, l2, max_iter)  # noqa: E731
    latent = fit(z_train, y_train).accuracy(z_test, y_test)
    pca_accuracy = pixel_accuracy = float("nan")
    if baselines:
        mean, components = pca(x_train, z_train.shape[1])
        pca_accuracy = fit(project(x_train, mean, components), y_train).accuracy(
            project(x_test, mean, components), y_test)
        pixel_accuracy = fit(x_train, y_train).accuracy(x_test, y_test)
    _, counts = np.unique(y_test, return_counts=True)
    return ProbeResult(latent_accuracy=latent, pca_accuracy=pca_accuracy,
                       pixel_accuracy=pixel_accuracy, chance=float(counts.max() / len(y_test)),
                       latent_dim=int(z_train.shape[1]),
                       num_classes=int(len(np.unique(y_train))), num_train=int(len(x_train)),
                       num_test=int(len(x_test)))


__all__ = ["LogisticRegression", "fit_logistic_regression", "lbfgs", "pca", "project",
           "ProbeResult", "linear_probe"]
