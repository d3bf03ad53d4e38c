"""Held-out evaluation: the negative ELBO over a data set and importance-weighted log p(x).

log p(x) >= E_q[log p(x, z) - log q(z|x)] = ELBO. The importance-weighted estimate

    log p_k(x) = log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x),   z_i ~ q(z|x),

is also a lower bound in expectation, never looser than the ELBO, and tends to log p(x) as
k grows (Burda, Grosse & Salakhutdinov, 2016).
"""
from __future__ import annotations

import numpy as np

from .distributions import (gaussian_kl_terms, gaussian_log_density, log_sum_exp,
                            pairwise_gaussian_log_density)



def negative_elbo(model, x, batch_size=1000, n_samples=1, seed=0):
    """Dataset averages (loss, rec, kl) of the negative ELBO, as floats in nats per example.

    loss = rec + kl with rec = -E_q[log p(x|z)]; kl is the model's `elbo(...).kl` (the analytic
    KL for a VAE). The noise comes from a Generator seeded with `seed`, so the same call gives
    the same numbers; x is processed in batches of `batch_size`.

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        A model with ``elbo(x, eps)``.
    x : array, shape (N, input_width)
        The examples (a ConditionalVAE's joined rows).
    batch_size : int
        Examples per batch (memory only: the result does not depend on it).
    n_samples : int
        L, the Monte Carlo samples of z per example.
    seed : int
        Seeds the noise, drawn per batch with shape (L, batch, noise_dim).

    Returns
    -------
    loss : float
        The negative ELBO, rec + kl.
    rec : float
        The reconstruction part, -E_q[log p(x|z)].
    kl : float
        The KL part (the rate).
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

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        A model with ``log_weights(x, eps)`` and ``noise_dim``.
    x : array, shape (B, input_width)
        The examples.
    k : int
        Importance samples per example; k = 1 gives a one-sample ELBO.
    batch_size : int
        Examples per batch.
    max_chunk_elements : int
        The most decoder outputs one chunk of samples may hold (memory only).
    seed : int
        Seeds the noise.

    Returns
    -------
    array, shape (B,)
        log p_k(x) = log (1/k) sum_i w_i for each example, float64 nats: a lower bound on
        log p(x) in expectation, never looser than the ELBO.
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

    Parameters
    ----------
    model : VAE or ConditionalVAE
        A model whose ``encode(x)`` gives (mu, logvar), each (B, latent_dim).
    x : array, shape (N, input_width)
        The examples.
    batch_size : int
        Examples encoded at a time.

    Returns
    -------
    array, shape (latent_dim,)
        The average KL of each dimension, float64 nats.
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

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        A model whose ``encode(x)`` gives (mu, logvar), each (N, latent_dim).
    x : array, shape (N, input_width)
        The examples.
    threshold : float
        The activity above which a dimension counts as active.
    batch_size : int
        Examples encoded at a time.

    Returns
    -------
    n_active : int
        The number of active dimensions.
    activity : array, shape (latent_dim,)
        Var_x(mu_j(x)) of each dimension, float64.
    """
    x = model.check_input(x, check_support=False)
    mus = np.concatenate([model.encode(x[s:s + batch_size])[0] for s in range(0, x.shape[0], batch_size)])
    activity = mus.astype(np.float64).var(axis=0)
    return int(np.sum(activity > threshold)), activity


def mutual_information(model, x, n_samples=1, batch_size=100, seed=0):
    """Monte Carlo estimate of I_q(x; z), the information z carries about which row of x it encodes.

    Draw an example index n uniformly from the N rows of x, then z ~ q(z | x_n). Under this
    joint distribution the mutual information between n and z is

        I_q(x; z) = (1/N) sum_n E_{q(z|x_n)}[log q(z|x_n) - log q(z)],
        q(z) = (1/N) sum_m q(z|x_m)   (the aggregate posterior),

    the average KL(q(z|x_n) || q(z)). Each code z_sn = mu_n + sigma_n * eps_sn, s = 1..n_samples,
    contributes the term log q(z_sn|x_n) - log q(z_sn), where log q(z_sn) is evaluated exactly,
    as a log-mean-exp of the N Gaussian log-densities log q(z_sn|x_m) (O(N^2 J) work per
    sample). The n_samples * N codes are scored against the N posteriors `batch_size` at a
    time, so one block holds batch_size * N * J float64 numbers besides the codes themselves
    (n_samples * N * J), however large N is.

    Parameters
    ----------
    model : a model with ``encode(x) -> (mu, logvar)``, each (N, J), and ``check_input``
        (npvae.VAE, ConditionalVAE; for a HierarchicalVAE, z is its first layer z1).
    x : array, shape (N, input_dim)
        The examples whose posteriors make up q(z).
    n_samples : int
        Codes drawn from each q(z | x_n).
    batch_size : int
        Examples encoded, and codes scored against all N posteriors, per block (memory).
    seed : int
        Seeds the Generator that draws the noise eps, shape (n_samples, N, J).

    Returns
    -------
    estimate : float
        The average of the N * n_samples terms, in nats (float64 throughout).
    standard_error : float
        Its Monte Carlo standard error: from the spread of each example's terms when
        n_samples >= 2; from the spread of all terms when n_samples = 1, which also counts
        the differences between examples and so overstates the error.

    Notes
    -----
    Bounds. Every term is <= log N, because q(z) >= q(z|x_n) / N (the mixture holds the
    n-th component with weight 1/N); so the estimate is <= log N, and it approaches log N
    when the N posteriors do not overlap. In expectation it lies between 0 and the average
    rate: E_n KL(q(z|x_n) || p(z)) = I_q(x; z) + KL(q(z) || p(z)) >= I_q(x; z).

    Bias. For the N given examples the estimate is unbiased, with Monte Carlo error only,
    because log q(z) is computed over all N posteriors (a minibatch of B < N of them would
    bias log q(z), and with it the estimate). As an estimate of the mutual information
    I(x; z) between z and an example drawn from the data distribution, it is biased
    downwards: with log q(z|x) as the critic it is the InfoNCE bound (van den Oord et al.,
    2018; Poole et al., 2019), whose expectation over the draw of the N examples is at most
    I(x; z), and which can never exceed log N, so an estimate close to log N says only that
    I(x; z) is at least about that large.
    """
    x = model.check_input(x, check_support=False)
    n_samples, batch_size = int(n_samples), int(batch_size)
    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples} and {batch_size}")
    N = x.shape[0]
    posterior = [model.encode(x[s:s + batch_size]) for s in range(0, N, batch_size)]
    mu = np.concatenate([p[0] for p in posterior]).astype(np.float64)  # (N, J)
    logvar = np.concatenate([p[1] for p in posterior]).astype(np.float64)  # (N, J)
    S, J = n_samples, mu.shape[1]
    eps = np.random.default_rng(seed).standard_normal((S, N, J))
    z = mu + np.exp(0.5 * logvar) * eps  # (S, N, J): z[s, n] ~ q(z | x_n)
    log_own = gaussian_log_density(z, mu, logvar).reshape(S * N)  # log q(z[s, n] | x_n)
    z = z.reshape(S * N, J)  # code s N + n
    log_agg = np.empty(S * N)  # log q(z) of each code
    for start in range(0, S * N, batch_size):
        block = z[start:start + batch_size]  # (b, J)
        log_each = pairwise_gaussian_log_density(block, mu, logvar)  # (b, N): log q(z_i | x_m)
        log_agg[start:start + block.shape[0]] = log_sum_exp(log_each.T) - np.log(N)
    terms = (log_own - log_agg).reshape(S, N)
    estimate = float(terms.mean())
    if terms.size == 1:
        return estimate, 0.0
    if n_samples >= 2:
        return estimate, float(np.sqrt(terms.var(axis=0, ddof=1).mean() / terms.size))
    return estimate, float(terms.std(ddof=1) / np.sqrt(terms.size))
