"""Held-out evaluation: the negative ELBO over a data set and importance-weighted log p(x).

log p(x) >= E_q[log p(x, z) - log q(z|x)] = ELBO. The importance-weighted estimate

    log p_k(x) = log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x),   z_i ~ q(z|x),

is also a lower bound in expectation, never looser than the ELBO, and tends to log p(x) as
k grows (Burda, Grosse & Salakhutdinov, 2016).
"""
from __future__ import annotations

import numpy as np

from .distributions import gaussian_kl_terms
from .objectives import log_sum_exp



def negative_elbo(model, x, batch_size=1000, n_samples=1, seed=0):
    """Dataset averages (loss, rec, kl) of the negative ELBO, as floats in nats per example.

    loss = rec + kl with rec = -E_q[log p(x|z)]; kl is the model's `elbo(...).kl` (the analytic
    KL for a VAE). The noise comes from a Generator seeded with `seed`, so the same call gives
    the same numbers; x is processed in batches of `batch_size`.
    """
    x = model.check_input(x)
    rng = np.random.default_rng(seed)
    total_rec = total_kl = 0.0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        eps = rng.standard_normal((n_samples, xb.shape[0], model.noise_dim), dtype=model.dtype)
        terms = model.elbo(xb, eps=eps)
        total_rec -= float(np.sum(terms.log_px_z, dtype=np.float64))
        total_kl += float(np.sum(terms.kl, dtype=np.float64))
    n = x.shape[0]
    return total_rec / n + total_kl / n, total_rec / n, total_kl / n


def log_likelihood(model, x, k=1000, batch_size=100, max_chunk_elements=2**23, seed=0):
    """Importance-weighted estimate of log p(x) per example, shape (B,), float64 nats.

    Works for any model with `log_weights(x, eps)` (the log importance weight of each noise
    sample, (L, B)) and `noise_dim`. The k samples are drawn in chunks so that one chunk's
    decoder output holds at most `max_chunk_elements` numbers (k = 5000 fits in memory);
    chunks are combined with a running log-sum-exp, so no weight ever leaves log space.
    Chunking does not change the noise: each chunk continues the same random stream.
    """
    x = model.check_input(x)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    result = np.empty(x.shape[0])
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]  # (B, D)
        B = xb.shape[0]
        chunk = max(1, min(k, max_chunk_elements // (B * model.output_dim)))
        running = np.full(B, -np.inf)  # log sum of the weights so far
        done = 0
        while done < k:
            c = min(chunk, k - done)
            eps = rng.standard_normal((c, B, model.noise_dim), dtype=model.dtype)
            log_w = model.log_weights(xb, eps).astype(np.float64)  # (c, B)
            running = np.logaddexp(running, log_sum_exp(log_w))
            done += c
        result[start:start + B] = running - np.log(k)
    return result


def kl_per_dimension(model, x, batch_size=1000):
    """Average over x of each latent dimension's KL term, shape (latent_dim,), nats.

    0.5 * (mu_j^2 + exp(logvar_j) - 1 - logvar_j) averaged over examples; the entries sum to
    the dataset-average KL. A dimension with (near) zero KL carries no information about x.
    """
    x = model.check_input(x, check_support=False)
    total = np.zeros(model.latent_dim)
    for start in range(0, x.shape[0], batch_size):
        mu, logvar = model.encode(x[start:start + batch_size])
        total += np.sum(gaussian_kl_terms(mu, logvar), axis=0, dtype=np.float64)
    return total / x.shape[0]


def active_units(model, x, threshold=0.01, batch_size=1000):
    """(number of active units, per-dimension activity Var_x E_q[z_j]) on the data x.

    A latent dimension is active when the posterior mean moves with the input:
    Var_x(mu_j(x)) > threshold (Burda et al., 2016, use 0.01).
    """
    x = model.check_input(x, check_support=False)
    mus = np.concatenate([model.encode(x[s:s + batch_size])[0] for s in range(0, x.shape[0], batch_size)])
    activity = mus.astype(np.float64).var(axis=0)
    return int(np.sum(activity > threshold)), activity
