"""A PyTorch reference of the keras_vae models the benchmark measures (for the benchmark only).

PyTorch is not a dependency of keras_vae; install it to run the comparisons:
`pip install torch` (the CPU build is enough).

The networks mirror keras_vae's presets layer for layer and with the same
initialisation scales (Glorot-uniform weights, zero biases, as Keras's Dense;
the output bias at the logit of the mean training pixel), the same posterior
head (one dense layer to 2d units: loc, softplus(.) + 1e-4), and the same
objectives (Bernoulli log-likelihood; ELBO with the analytic Gaussian KL, or
IWAE_k = log-mean-exp of the k log-weights), averaged over the batch, with Adam.

    seed MLP   784-200-10, ReLU           (keras_vae preset 'mlp', hidden_units=(200,))
    iwae       784-200-200-50, tanh       (keras_vae preset 'iwae', Burda et al. 2016)
"""

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)
MIN_SCALE = 1e-4  # keras_vae.posteriors.DiagonalGaussianPosterior's default floor


def _dense(n_in, n_out):
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)  # = keras glorot_uniform
    nn.init.zeros_(layer.bias)
    return layer


class TorchVAE(nn.Module):
    """MLP VAE with a diagonal Gaussian q(z|x), N(0, I) prior and Bernoulli p(x|z)."""

    def __init__(self, hidden_units=(200,), latent_dim=10, activation="relu", data_dim=784):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers, n = [], data_dim
        for units in hidden_units:
            layers += [_dense(n, units), act()]
            n = units
        self.encoder = nn.Sequential(*layers)
        self.head = _dense(n, 2 * latent_dim)
        layers, n = [], latent_dim
        for units in reversed(tuple(hidden_units)):
            layers += [_dense(n, units), act()]
            n = units
        layers.append(_dense(n, data_dim))
        self.decoder = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def initialize_output_bias(self, x):
        mean = np.clip(np.asarray(x, np.float64).reshape(len(x), -1).mean(0), 1e-3, 1 - 1e-3)
        with torch.no_grad():
            self.decoder[-1].bias.copy_(torch.from_numpy(np.log(mean) - np.log1p(-mean)).float())

    def log_weights(self, x, k):
        """log w [k, B] and the analytic KL [B] for x [B, D] in {0, 1}."""
        params = self.head(self.encoder(x))
        loc, raw = params.chunk(2, dim=-1)
        scale = F.softplus(raw) + MIN_SCALE
        eps = torch.randn((k,) + loc.shape, dtype=loc.dtype, device=loc.device)
        z = loc + scale * eps
        logits = self.decoder(z.reshape(-1, self.latent_dim)).reshape(k, x.shape[0], -1)
        # log Bernoulli(x; sigmoid(l)) = -BCE-with-logits
        log_px = -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
        log_qz = (-0.5 * (eps.square() + LOG_2PI) - torch.log(scale)).sum(-1)
        kl = (0.5 * (loc.square() + scale.square() - 1.0) - torch.log(scale)).sum(-1)
        return log_px, log_pz, log_qz, kl

    def objective(self, x, k=1, kind="elbo"):
        """The per-example training value [B]: 'elbo' (analytic KL) or 'iwae'."""
        log_px, log_pz, log_qz, kl = self.log_weights(x, k)
        if kind == "elbo":
            return log_px.mean(0) - kl
        log_w = log_px + log_pz - log_qz
        return torch.logsumexp(log_w, 0) - math.log(k)


def make_optimizer(model, lr=1e-3, eps=1e-7):
    """Adam with Keras's defaults (epsilon 1e-7 unless told)."""
    return torch.optim.Adam(model.parameters(), lr=lr, eps=eps)


def train_epoch(model, optimizer, x, batch_size, k=1, kind="elbo", generator=None,
                max_steps=None):
    """One pass over x (a float32 tensor [N, D]) in shuffled batches; returns (steps, seconds)."""
    model.train()
    n = x.shape[0]
    steps = n // batch_size
    if max_steps is not None:
        steps = min(steps, max_steps)
    start = time.perf_counter()
    perm = torch.randperm(n, generator=generator)
    for i in range(steps):
        xb = x[perm[i * batch_size:(i + 1) * batch_size]]
        loss = -model.objective(xb, k, kind).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps, time.perf_counter() - start


@torch.no_grad()
def log_likelihood(model, x, k=5000, chunk=1000, batch_size=1):
    """log p(x) by importance sampling with k samples (IWAE_k), per example [N], in nats."""
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        parts = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            log_px, log_pz, log_qz, _ = model.log_weights(xb, n)
            parts.append(log_px + log_pz - log_qz)
        log_w = torch.cat(parts, 0)
        out.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.cat(out).numpy()
