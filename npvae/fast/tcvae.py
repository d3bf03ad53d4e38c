"""The kernel of the tcvae objective's minibatch terms. Its NumPy twin, which reads like the
equations, is npvae.tcvae.minibatch_terms_np; the derivation is in that module's docstring.

Shapes: z, dz: (R, m) codes, row r = l B + i drawn from q(z | x_i); h, dh: (B, 2m) the
posteriors [mu | logvar]; log_w: (B, B) the estimator's mixture weights; work: (B + 1, 4m + 1)
float64 scratch of `work_shape(B, m)`. The pair log-densities l_rkj are computed one code r at a
time, so the kernel needs O(B m) memory where the twin holds (R, B, m) arrays.

What makes it fast: each pair (r, k, j) costs one exp. The terms w_ik exp(l_rkj) of the
marginal log-sum-exps are kept, so the responsibilities b_rkj are those terms over their
sums, and likewise a_rk; the inner loops run over j, along rows of `work`.
"""
from __future__ import annotations

import numpy as np

from ..distributions import LOG_2PI
from .jit import JIT, njit


def work_shape(B, m):
    """The shape of tc_terms' scratch for B posteriors of m dimensions."""
    return B + 1, 4 * m + 1


@njit(**JIT)
def tc_terms(z, h, log_w, alpha, beta, gamma, dz, dh, work):
    """dz, dh <- the pairwise (and prior) gradients of the latent part of the tcvae loss;
    returns the sums over the rows of (MI, TC, DWKL). See tcvae.minibatch_terms_np.

    work[k] holds, for posterior k: [0, m) l_rkj, [m, 2m) the marginal terms
    w_ik exp(l_rkj - top_j), [2m, 3m) exp(-logvar_kj), [3m, 4m) -(logvar_kj + log 2 pi) / 2,
    [4m] log w_ik + sum_j l_rkj, then the joint term. work[B]: [0, m) the marginals' maxima
    over k, then 1 / their sums; [m, 2m) those sums.
    """
    R, m = z.shape
    B = h.shape[0]
    if work.shape[0] < B + 1 or work.shape[1] < 4 * m + 1:
        raise ValueError("tc_terms: work is smaller than work_shape(B, m)")
    c_joint, c_marg, c_prior = (beta - alpha) / R, (gamma - beta) / R, gamma / R
    L0, E0, V0, C0, S = 0, m, 2 * m, 3 * m, 4 * m
    for k in range(B):
        for j in range(2 * m):
            dh[k, j] = 0
        for j in range(m):
            lv = np.float64(h[k, m + j])
            work[k, V0 + j] = np.exp(-lv)
            work[k, C0 + j] = -0.5 * (lv + LOG_2PI)
    mi = tc = dw = 0.0
    for r in range(R):
        i = r % B
        # pass 1: l_rkj, the joint sums, and the marginals' maxima over k
        for j in range(m):
            work[B, j] = -np.inf
        for k in range(B):
            s = log_w[i, k]
            for j in range(m):
                d = np.float64(z[r, j]) - h[k, j]
                l_ = -0.5 * d * d * work[k, V0 + j] + work[k, C0 + j]
                work[k, L0 + j] = l_
                s += l_
                work[B, j] = max(work[B, j], log_w[i, k] + l_)
            work[k, S] = s
        own = work[i, S] - log_w[i, i]  # log q(z_r | x_i)
        top = work[0, S]
        for k in range(1, B):
            top = max(top, work[k, S])
        acc = 0.0
        for k in range(B):
            e = np.exp(work[k, S] - top)
            work[k, S] = e
            acc += e
        log_qz = top + np.log(acc)
        # the marginals: one exp per pair, kept for the responsibilities
        for j in range(m):
            work[B, m + j] = 0.0
        for k in range(B):
            for j in range(m):
                e = np.exp(log_w[i, k] + work[k, L0 + j] - work[B, j])
                work[k, E0 + j] = e
                work[B, m + j] += e
        sum_qzj = 0.0
        log_pz = 0.0
        for j in range(m):
            acc_j = work[B, m + j]
            log_qzj = work[B, j] + np.log(acc_j)
            sum_qzj += log_qzj
            work[B, j] = 1.0 / acc_j
            zz = np.float64(z[r, j])
            log_pz += -0.5 * (zz * zz + LOG_2PI)
            dz[r, j] = c_prior * zz
        mi += own - log_qz
        tc += log_qz - sum_qzj
        dw += sum_qzj - log_pz
        # pass 2: the responsibilities a_rk, b_rkj weigh the derivatives of l_rkj
        inv_acc = 1.0 / acc
        for k in range(B):
            ca = c_joint * work[k, S] * inv_acc
            for j in range(m):
                g = ca + c_marg * work[k, E0 + j] * work[B, j]
                d = np.float64(z[r, j]) - h[k, j]
                u = d * work[k, V0 + j]
                dz[r, j] -= g * u
                dh[k, j] += g * u
                dh[k, m + j] += g * 0.5 * (u * d - 1.0)
    return mi, tc, dw
