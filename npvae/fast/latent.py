"""Kernels of the Gaussian latent block and the objectives' per-sample weights. Their NumPy
twins, which read like the equations, are in npvae/latent.py and npvae/objectives.py.

Shapes: h: (B, 2m) the encoder head's output [mu | logvar]; eps: (L, B, m) the noise;
z, dz: (L B, m) with row l B + i for sample l of example i; std: (B, m).
"""
from __future__ import annotations

import numpy as np

from ..distributions import LOG_2PI
from .jit import JIT, njit


@njit(**JIT)
def reparameterize(h, eps, z, std):
    """std <- exp(logvar / 2);  z[l B + i] <- mu_i + std_i * eps[l, i]."""
    L, B, m = eps.shape
    half = h.dtype.type(0.5)
    for i in range(B):
        for j in range(m):
            std[i, j] = np.exp(half * h[i, m + j])
    for l in range(L):
        for i in range(B):
            for j in range(m):
                z[l * B + i, j] = h[i, j] + std[i, j] * eps[l, i, j]


@njit(**JIT)
def kl_per_dim(h, std, out):
    """out[j] <- sum_i 0.5 (mu_ij^2 + std_ij^2 - 1 - logvar_ij), accumulated in float64.
    (std^2 = exp(logvar): no second exp.)"""
    B, m = std.shape
    for j in range(m):
        out[j] = 0.0
    for i in range(B):
        for j in range(m):
            mu, lv, sd = h[i, j], h[i, m + j], std[i, j]
            out[j] += 0.5 * (np.float64(mu) * mu + np.float64(sd) * sd - 1.0 - lv)


@njit(**JIT)
def log_prior_ratio(z, eps, h, out):
    """out[l B + i] <- log N(z | 0, I) - log q(z | x_i) = -0.5 sum_j (z^2 - eps^2) + 0.5 sum_j logvar_ij
    (the log 2 pi terms cancel), in float64."""
    L, B, m = eps.shape
    for l in range(L):
        for i in range(B):
            r = l * B + i
            acc = 0.0
            for j in range(m):
                zz, ee = np.float64(z[r, j]), np.float64(eps[l, i, j])
                acc += -0.5 * (zz * zz - ee * ee) + 0.5 * h[i, m + j]
            out[r] = acc


@njit(**JIT)
def log_q(eps, h, out):
    """out[l B + i] <- log q(z | x_i) of the sample z = mu + std * eps = -0.5 sum_j (eps^2 + logvar + log 2 pi)."""
    L, B, m = eps.shape
    for l in range(L):
        for i in range(B):
            acc = 0.0
            for j in range(m):
                ee = np.float64(eps[l, i, j])
                acc += -0.5 * (ee * ee + h[i, m + j] + LOG_2PI)
            out[l * B + i] = acc


@njit(**JIT)
def latent_backward(dz, eps, h, std, z, w, prior, entropy, kl_w, dh):
    """dh <- dloss/d[mu | logvar] of the latent block; see latent.latent_backward_np.

    dz: (L B, m) dloss/dz from the decoder; w: (L B,) the sampled terms' weights;
    prior: the loss has -w log N(z | 0, I), so dz += w z; entropy: the loss has +w log q(z|x),
    whose logvar part gives dlogvar -= 0.5 sum_l w; kl_w: (m,) weight of the analytic KL of each
    dimension (beta / B, 0 below the free-bits floor or without an analytic KL).
    """
    L, B, m = eps.shape
    half = dh.dtype.type(0.5)
    one = dh.dtype.type(1)
    zero = dh.dtype.type(0)
    for i in range(B):
        for j in range(2 * m):
            dh[i, j] = zero
    for l in range(L):
        for i in range(B):
            r = l * B + i
            wr = w[r]
            for j in range(m):
                d = dz[r, j] + wr * z[r, j] if prior else dz[r, j]
                dh[i, j] += d
                dh[i, m + j] += d * eps[l, i, j]
    for i in range(B):
        ent = zero
        if entropy:
            for l in range(L):
                ent += w[l * B + i]
        for j in range(m):
            sd = std[i, j]
            dh[i, j] += kl_w[j] * h[i, j]
            dh[i, m + j] = (dh[i, m + j] * (half * sd) - half * ent
                            + kl_w[j] * (half * (sd * sd - one)))


@njit(**JIT)
def softmax_samples(log_w, a):
    """a[:, i] <- softmax over the L samples of log_w[:, i]; returns sum_i log mean_l w_li.

    log_w, a: (L, B). Shifted by each column's maximum, so no exp overflows.
    """
    L, B = log_w.shape
    total = 0.0
    for i in range(B):
        top = log_w[0, i]
        for l in range(1, L):
            top = max(top, log_w[l, i])
        s = 0.0
        for l in range(L):
            e = np.exp(log_w[l, i] - top)
            a[l, i] = e
            s += e
        for l in range(L):
            a[l, i] /= s
        total += top + np.log(s / L)
    return total
