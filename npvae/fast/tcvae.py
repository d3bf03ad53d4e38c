"""The kernel of the tcvae objective's minibatch terms. Its NumPy twin, which reads like the
equations, is npvae.tcvae.minibatch_terms_np; the derivation is in that module's docstring.

Shapes: z, dz: (R, m) codes, row r = l B + i drawn from q(z | x_i); h, dh: (B, 2m) the
posteriors [mu | logvar]; log_w: (B, B) the estimator's mixture weights; work: (B + 1, 2m + 1)
float64 scratch (columns m + 1 on hold exp(-logvar), computed once per call). The pair log-densities l_rkj are computed row by row into `work`, so the
kernel needs O(B m) memory where the twin holds (R, B, m) arrays.
"""
from __future__ import annotations

import numpy as np

from ..distributions import LOG_2PI
from .jit import JIT, njit


@njit(**JIT)
def tc_terms(z, h, log_w, alpha, beta, gamma, dz, dh, work):
    """dz, dh <- the pairwise (and prior) gradients of the latent part of the tcvae loss;
    returns the sums over the rows of (MI, TC, DWKL). See tcvae.minibatch_terms_np."""
    R, m = z.shape
    B = h.shape[0]
    c_joint, c_marg, c_prior = (beta - alpha) / R, (gamma - beta) / R, gamma / R
    for k in range(B):
        for j in range(2 * m):
            dh[k, j] = 0
        for j in range(m):
            work[k, m + 1 + j] = np.exp(-np.float64(h[k, m + j]))
    mi = tc = dw = 0.0
    for r in range(R):
        i = r % B
        # pass 1: work[k, j] = l_rkj, work[k, m] = log w_ik + sum_j l_rkj
        for k in range(B):
            s = log_w[i, k]
            for j in range(m):
                d = np.float64(z[r, j]) - h[k, j]
                lv = np.float64(h[k, m + j])
                l_ = -0.5 * (d * d * work[k, m + 1 + j] + lv + LOG_2PI)
                work[k, j] = l_
                s += l_
            work[k, m] = s
        top = work[0, m]
        for k in range(1, B):
            top = max(top, work[k, m])
        acc = 0.0
        for k in range(B):
            acc += np.exp(work[k, m] - top)
        log_qz = top + np.log(acc)
        own = work[i, m] - log_w[i, i]
        sum_qzj = 0.0
        log_pz = 0.0
        for j in range(m):  # work[B, j] = log q_hat_j(z_rj)
            top = log_w[i, 0] + work[0, j]
            for k in range(1, B):
                top = max(top, log_w[i, k] + work[k, j])
            acc = 0.0
            for k in range(B):
                acc += np.exp(log_w[i, k] + work[k, j] - top)
            work[B, j] = top + np.log(acc)
            sum_qzj += work[B, j]
            zz = np.float64(z[r, j])
            log_pz += -0.5 * (zz * zz + LOG_2PI)
        mi += own - log_qz
        tc += log_qz - sum_qzj
        dw += sum_qzj - log_pz
        # pass 2: the responsibilities a_rk, b_rkj weigh the derivatives of l_rkj
        for j in range(m):
            dz[r, j] = c_prior * z[r, j]
        for k in range(B):
            a = np.exp(work[k, m] - log_qz)
            for j in range(m):
                b = np.exp(log_w[i, k] + work[k, j] - work[B, j])
                g = c_joint * a + c_marg * b
                d = np.float64(z[r, j]) - h[k, j]
                u = d * work[k, m + 1 + j]
                dz[r, j] -= g * u
                dh[k, j] += g * u
                dh[k, m + j] += g * 0.5 * (u * d - 1.0)
    return mi, tc, dw
