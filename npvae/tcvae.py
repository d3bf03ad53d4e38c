"""beta-TCVAE: the KL term split in three, estimated over the minibatch, and its gradient.

Draw an example index n uniformly from the N training rows, then z ~ q(z | x_n). The
aggregate posterior is the mixture q(z) = (1/N) sum_n q(z | x_n) and its marginals are
q(z_j) = (1/N) sum_n q(z_j | x_n). For every z and n,

    log q(z|x_n) - log p(z) = [log q(z|x_n) - log q(z)]                  (index-code MI)
                            + [log q(z) - sum_j log q(z_j)]              (total correlation)
                            + sum_j [log q(z_j) - log p(z_j)]            (dimension-wise KL)

(p(z) = N(0, I) factorises), so the average rate E_n KL(q(z|x_n) || p(z)) is the sum of
I_q(z; n), TC = KL(q(z) || prod_j q(z_j)) and sum_j KL(q(z_j) || p(z_j)), each >= 0
(Chen et al., 2018). beta-TCVAE minimises

    loss = -E log p(x|z) + alpha * MI + beta * TC + gamma * DWKL,

which is the negative ELBO at alpha = beta = gamma = 1 and the beta-VAE when all three are
equal; beta > 1 alone penalises statistical dependence between the latent dimensions.

The estimator of q(z) (stratified over the minibatch)
-----------------------------------------------------
A step sees a batch of B examples: example i and B - 1 others, drawn without replacement
from the N - 1 rows that are not i. For a code z drawn from q(z | x_i),

    q(z) = (1/N) q(z | x_i) + (1/N) sum_{n != i} q(z | x_n),

and the B - 1 others are a uniform sample of the N - 1 terms of the second sum, so

    q_hat(z) = (1/N) q(z | x_i) + (N - 1) / (N (B - 1)) sum_{k != i in the batch} q(z | x_k)

is unbiased for q(z): the example's own posterior is one stratum, known exactly, and the
others are the second. The same weights give q_hat(z_j). The loss needs log q(z), and the
log of an unbiased estimate is biased low (Jensen): E log q_hat <= log q, by about
Var(q_hat) / (2 q^2); the bias shrinks as B grows and is zero at B = N, where q_hat is the
exact mixture. Giving every batch member the same weight instead (the simpler
"minibatch-weighted" estimator) gives the own posterior, which usually dominates the
mixture near its own code, weight 1/(N B) instead of 1/N, and is biased even for q(z)
itself; the book's notebook 13 measures both.

Each log q_hat is a log-sum-exp over the B posteriors, with weights w_ik (log_w below):

    log q_hat(z_r)   = log sum_k w_ik exp(sum_j l_rkj),     l_rkj = log N(z_rj | mu_kj, exp(lv_kj)),
    log q_hat_j(z_r) = log sum_k w_ik exp(l_rkj),

for the row r = l B + i (sample l of example i). Its gradient is a softmax over k: the
responsibilities a_rk = w_ik exp(sum_j l_rkj) / q_hat(z_r) and b_rkj = w_ik exp(l_rkj) /
q_hat_j(z_rj) weigh the derivatives of l_rkj,

    dl/dz_rj = -u_rkj,   dl/dmu_kj = u_rkj,   dl/dlv_kj = 0.5 (u_rkj (z_rj - mu_kj) - 1),
    u_rkj = (z_rj - mu_kj) exp(-lv_kj).

Written per row, the loss's latent part is (1/R) sum_r [alpha log q(z_r|x_i) + (beta - alpha)
log q_hat(z_r) + (gamma - beta) sum_j log q_hat_j(z_rj) - gamma log p(z_r)] (R = L B rows), so
with g_rkj = ((beta - alpha) a_rk + (gamma - beta) b_rkj) / R,

    dz_rj   = sum_k g_rkj (-u_rkj) + (gamma / R) z_rj               (with z as a free variable)
    dmu_kj  = sum_r g_rkj u_rkj
    dlv_kj  = sum_r g_rkj 0.5 (u_rkj (z_rj - mu_kj) - 1),

and the latent block (npvae.latent) adds the rest: the path of dz through z = mu + std * eps,
and the own log q(z|x_i) as a sampled "entropy" term of weight alpha / R. `minibatch_terms_np`
computes the values and these gradients with NumPy; the kernel `tc_terms` in
npvae/fast/tcvae.py is its twin, which never stores the (R, B, m) array of l_rkj.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .distributions import LOG_2PI, log_sum_exp
from .fast import backend
from .limits import check_array


class TCWeights(NamedTuple):
    """The weights of the tcvae objective besides beta (which weighs the total correlation).

    alpha weighs the index-code mutual information, gamma the dimension-wise KL; N is the
    number of training rows the batches are drawn from (None: the batch is all the data).
    """

    alpha: float = 1.0
    gamma: float = 1.0
    dataset_size: int | None = None


class Decomposition(NamedTuple):
    """The three terms of one batch's codes, each per row r = l B + i, shape (R,), nats."""

    mi: np.ndarray  # log q(z_r | x_i) - log q_hat(z_r)
    tc: np.ndarray  # log q_hat(z_r) - sum_j log q_hat_j(z_rj)
    dwkl: np.ndarray  # sum_j log q_hat_j(z_rj) - log p(z_r)


def stratified_log_weights(B, N=None):
    """log w_ik, (B, B) float64: the weight of posterior k in example i's estimate of q(z).

    1/N on the diagonal (the example's own posterior) and (N - 1) / (N (B - 1)) elsewhere, so
    each row sums to 1 and at B = N every weight is 1/N, the exact mixture. N >= B >= 2
    (or B = N = 1); N None: the batch is all the data, N = B.
    """
    N = B if N is None else N
    if B > N:
        raise ValueError(f"a batch of {B} examples cannot come from {N} training rows")
    if B == 1:
        if N > 1:
            raise ValueError(f"the tcvae objective estimates q(z) from the other examples of "
                             f"a batch: it needs at least 2 examples per batch, got 1 (of {N} rows)")
        return np.zeros((1, 1))
    log_w = np.full((B, B), np.log((N - 1) / (N * (B - 1))))
    np.fill_diagonal(log_w, -np.log(N))
    return log_w


def pair_log_densities(z, mu, logvar):
    """l_rkj = log N(z_rj | mu_kj, exp(logvar_kj)): every code against every posterior.

    z: (R, m), mu, logvar: (B, m) -> (R, B, m) float64.
    """
    z, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (z, mu, logvar))
    d = z[:, None, :] - mu[None, :, :]  # (R, B, m)
    return -0.5 * (d * d * np.exp(-logvar) + logvar + LOG_2PI)


def _mixture_terms(z, mu, logvar, log_w):
    """(l, row weights, log q_hat(z), log q_hat(z_j), Decomposition) of float64 codes: what
    `decompose` returns and what the twin's gradient reuses."""
    R, B = z.shape[0], mu.shape[0]
    lp = pair_log_densities(z, mu, logvar)  # (R, B, m)
    own = np.arange(R) % B
    lw = np.asarray(log_w, dtype=np.float64)[own]  # (R, B): row r's weights
    log_q_own = lp[np.arange(R), own].sum(axis=-1)  # log q(z_r | x_i)
    log_qz = log_sum_exp(lw + lp.sum(axis=-1), axis=1)  # (R,)
    log_qzj = log_sum_exp(lw[:, :, None] + lp, axis=1)  # (R, m)
    log_pz = -0.5 * np.sum(z * z + LOG_2PI, axis=-1)
    terms = Decomposition(log_q_own - log_qz, log_qz - log_qzj.sum(axis=-1),
                          log_qzj.sum(axis=-1) - log_pz)
    return lp, lw, log_qz, log_qzj, terms


def decompose(z, mu, logvar, log_w):
    """MI, TC and dimension-wise KL of each code, with q(z) estimated over the batch.

    Parameters
    ----------
    z : array, shape (R, m)
        The codes, row r = l B + i drawn from q(z | x_i).
    mu, logvar : arrays, shape (B, m)
        The batch's posteriors.
    log_w : array, shape (B, B)
        log w_ik, the mixture weights of example i's estimate (`stratified_log_weights`).

    Returns
    -------
    Decomposition
        mi, tc, dwkl per code, float64 (R,). Their sum is log q(z|x) - log p(z) of each code.
    """
    z, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (z, mu, logvar))
    return _mixture_terms(z, mu, logvar, log_w)[-1]


def tc_loss(z, mu, logvar, log_w, alpha, beta, gamma):
    """The latent part of the tcvae loss: mean over the codes of alpha MI + beta TC + gamma DWKL."""
    d = decompose(z, mu, logvar, log_w)
    return float(np.mean(alpha * d.mi + beta * d.tc + gamma * d.dwkl))


def minibatch_terms_np(z, h, log_w, alpha, beta, gamma, dz, dh):
    """Twin of the kernel: the batch sums of (MI, TC, DWKL) and the pairwise gradients.

    z: (R, m) codes; h: (B, 2m) [mu | logvar]; log_w: (B, B). Writes dz <- the gradient of the
    loss's latent part with respect to z as a free variable (pairwise and prior terms, see
    the module docstring) and dh <- its explicit gradient with respect to [mu | logvar] (the
    own log q(z|x) excluded: the latent block adds it). Returns the three sums over the rows.
    """
    R, m = z.shape
    mu, logvar = h[:, :m].astype(np.float64), h[:, m:].astype(np.float64)
    zz = z.astype(np.float64)
    lp, lw, log_qz, log_qzj, d = _mixture_terms(zz, mu, logvar, log_w)
    a = np.exp(lw + lp.sum(axis=-1) - log_qz[:, None])  # (R, B)
    b = np.exp(lw[:, :, None] + lp - log_qzj[:, None, :])  # (R, B, m)
    g = ((beta - alpha) * a[:, :, None] + (gamma - beta) * b) / R  # (R, B, m)
    diff = zz[:, None, :] - mu[None, :, :]
    u = diff * np.exp(-logvar)[None, :, :]
    dz[...] = -np.sum(g * u, axis=1) + (gamma / R) * zz
    dh[:, :m] = np.sum(g * u, axis=0)
    dh[:, m:] = np.sum(g * 0.5 * (u * diff - 1), axis=0)
    return float(d.mi.sum()), float(d.tc.sum()), float(d.dwkl.sum())


def minibatch_terms(latent, log_w, alpha, beta, gamma, dz, dh, ws):
    """The tcvae terms of a latent block's batch (its codes `latent.z` and head `latent.h`),
    by the kernel under "numba" and the twin under "numpy"; see `minibatch_terms_np`.
    `ws` (a Workspace) holds the kernel's scratch rows."""
    R, m = latent.z.shape
    B = latent.h.shape[0]
    K = backend.kernels()
    if K is not None:
        work = ws.get("tc_work", K.tc_work_shape(B, m), np.float64)
        return K.tc_terms(latent.z, latent.h, log_w, alpha, beta, gamma, dz, dh, work)
    check_array((R, B, m), 8 * 6, f"the tcvae objective's pairwise terms of {R:,} codes")
    return minibatch_terms_np(latent.z, latent.h, log_w, alpha, beta, gamma, dz, dh)
