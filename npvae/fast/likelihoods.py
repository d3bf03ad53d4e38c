"""Kernels of the likelihood blocks: log p(x|z) per row and its gradient, in one pass.

Every kernel here has the same contract, that of `Likelihood.log_prob_and_grad_rows`
(npvae/likelihoods.py, whose NumPy twin is the specification):

* x: (B, D) data; out: (R, P) decoder outputs, R = L B, row r belonging to example r % B;
* out is overwritten with d log p(x_r | out_r) / d out_r (the ascent direction, unscaled);
* the terms of log p are written into a scratch array whose row sums NumPy then takes
  (pairwise and SIMD: a running sum inside a numba loop would be serial, because without
  fastmath LLVM may not reorder floating-point additions).

numba's exp and log are scalar calls (llvmlite from PyPI has no vector maths library), while
NumPy's exp, expm1, log and log1p ufuncs are SIMD. So the transcendental passes are NumPy's,
written into preallocated buffers, and numba fuses the arithmetic around them.
"""
from __future__ import annotations

import numpy as np

from ..distributions import LOG_2PI
from .jit import JIT, njit

# --------------------------------------------------------------------------- Bernoulli
# log p(x|l) = sum_d x_d l_d - softplus(l_d),  softplus(l) = max(l, 0) + log1p(exp(-|l|))
# d/dl log p = x - sigmoid(l),  sigmoid(l) = [l >= 0 ? 1 : e] / (1 + e),  e = exp(-|l|).


@njit(**JIT)
def neg_abs(a, e):
    """e <- -|a| elementwise (NumPy's SIMD exp then makes it exp(-|a|))."""
    R, P = a.shape
    for i in range(R):
        for j in range(P):
            e[i, j] = -abs(a[i, j])


@njit(**JIT)
def _bernoulli_finish(x, l, e, s):
    """Given e = exp(-|l|), s = log1p(e): s <- the terms of log p, l <- x - sigmoid(l)."""
    R, P = l.shape
    B = x.shape[0]
    zero = l.dtype.type(0)
    one = l.dtype.type(1)
    for i in range(R):
        xi = x[i % B]
        for j in range(P):
            v = l[i, j]
            xv = xi[j]
            ej = e[i, j]
            s[i, j] = xv * v - (max(v, zero) + s[i, j])
            l[i, j] = xv - (one if v >= zero else ej) / (one + ej)


def bernoulli(x, l, logp, e, s):
    """Bernoulli from logits l: (R, P), overwritten with x - sigmoid(l); logp: (R,).
    e, s: (R, P) scratch of l's dtype."""
    neg_abs(l, e)
    np.exp(e, out=e)  # exp(-|l|) in (0, 1]
    np.log1p(e, out=s)  # log(1 + exp(-|l|))
    _bernoulli_finish(x, l, e, s)
    np.sum(s, axis=1, out=logp)


# --------------------------------------------------------------------------- Gaussian, fixed sigma


@njit(**JIT)
def _gaussian(x, f, inv_var, s):
    """s <- -0.5 inv_var (x - f)^2;  f <- inv_var (x - f)."""
    R, P = f.shape
    B = x.shape[0]
    half = f.dtype.type(0.5)
    for i in range(R):
        xi = x[i % B]
        for j in range(P):
            r = xi[j] - f[i, j]
            s[i, j] = -half * inv_var * r * r
            f[i, j] = inv_var * r


def gaussian(x, f, logp, inv_var, log_norm, s):
    """Fixed-sigma Gaussian: log N(x | f, sigma^2 I) per row, f overwritten with (x - f) / sigma^2.
    inv_var = 1 / sigma^2 (the arrays' dtype); log_norm = -(D / 2) log(2 pi sigma^2)."""
    _gaussian(x, f, inv_var, s)
    np.sum(s, axis=1, out=logp)
    logp += logp.dtype.type(log_norm)


# ------------------------------------------------------------------ Gaussian, learned variance
# out = [f | r]; logvar = soft_clamp(r) = lo + softplus(r - lo) - softplus(r - hi);
# log p = -0.5 sum_d ((x - f)^2 exp(-logvar) + logvar + log 2 pi).


@njit(**JIT)
def _gl_prep(out, lo, hi, e):
    """e[:, :D] <- -|r - lo|, e[:, D:] <- -|r - hi|."""
    R, P = out.shape
    D = P // 2
    for i in range(R):
        for j in range(D):
            r = out[i, D + j]
            e[i, j] = -abs(r - lo)
            e[i, D + j] = -abs(r - hi)


@njit(**JIT)
def _gl_logvar(out, lo, hi, e, s):
    """Given e = exp(-|r - lo|) | exp(-|r - hi|) and s = log1p of it:
    e[:, :D] <- soft_clamp'(r) = sigmoid(r - lo) - sigmoid(r - hi);  e[:, D:] <- logvar;
    s <- -logvar | 0 (NumPy's exp then makes s[:, :D] the precision exp(-logvar)).
    logvar = soft_clamp(r) = lo + softplus(r - lo) - softplus(r - hi), with
    softplus(u) = max(u, 0) + log1p(exp(-|u|))."""
    R, P = out.shape
    D = P // 2
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    for i in range(R):
        for j in range(D):
            r = out[i, D + j]
            e_lo, e_hi = e[i, j], e[i, D + j]
            sig_lo = (one if r >= lo else e_lo) / (one + e_lo)
            sig_hi = (one if r >= hi else e_hi) / (one + e_hi)
            logvar = lo + (max(r - lo, zero) + s[i, j]) - (max(r - hi, zero) + s[i, D + j])
            e[i, j] = sig_lo - sig_hi
            e[i, D + j] = logvar
            s[i, j] = -logvar
            s[i, D + j] = zero


@njit(**JIT)
def _gl_finish(x, out, e, s):
    """Given e = soft_clamp'(r) | logvar and s = exp(-logvar) | 1:
    e[:, :D] <- the terms of log p; out <- [d/df | d/dr] of log p."""
    R, P = out.shape
    D = P // 2
    B = x.shape[0]
    one = out.dtype.type(1)
    half = out.dtype.type(0.5)
    c = out.dtype.type(LOG_2PI)
    for i in range(R):
        xi = x[i % B]
        for j in range(D):
            res = xi[j] - out[i, j]
            prec = s[i, j]
            q = res * res * prec
            out[i, D + j] = half * (q - one) * e[i, j]
            out[i, j] = res * prec
            e[i, j] = -half * (q + e[i, D + j] + c)


def gaussian_learned(x, out, logp, lo, hi, e, s):
    """Learned-variance Gaussian over out = [f | r]: (R, 2D), x: (B, D); e, s: (R, 2D) scratch.
    lo, hi: the soft-clamp bounds of the log-variance, in the arrays' dtype. (Every NumPy pass
    runs over a whole contiguous buffer: on a strided half NumPy would allocate.)"""
    _gl_prep(out, lo, hi, e)
    np.exp(e, out=e)  # exp(-|r - lo|) | exp(-|r - hi|)
    np.log1p(e, out=s)
    _gl_logvar(out, lo, hi, e, s)
    np.exp(s, out=s)  # exp(-logvar) | 1
    _gl_finish(x, out, e, s)
    np.sum(e[:, :out.shape[1] // 2], axis=1, out=logp)


# --------------------------------------------------------------------------- continuous Bernoulli
# With a = |l|, e = exp(-a) and q = 1 - e = -expm1(-a) (accurate for small a):
#   log C(l) - softplus(l) = log(a / q) - max(l, 0), so log p = x l - max(l, 0) + log(a / q);
#   d log C / dl = 1/l - 1/sinh(l) = sign(l) (1/a - 2 e / (q (2 - q))),  1 - e^2 = q (2 - q).
# Both in float64: in float32 the difference 1/a - 1/sinh(a) loses every digit for small a.
# Below a = 2e-2 the gradient uses the series l/6 - 7 l^3/360 + 31 l^5/15120, as the twin does.

CB_SERIES_BELOW = 2e-2


@njit(**JIT)
def _cb_ratio(l, q, t):
    """q holds expm1(-|l|) = -q: q <- q; t <- a / q (1 at a = 0, where both vanish)."""
    R, P = l.shape
    for i in range(R):
        for j in range(P):
            a = abs(np.float64(l[i, j]))
            qq = -q[i, j]
            q[i, j] = qq
            t[i, j] = a / qq if a > 0 else 1.0


@njit(**JIT)
def _cb_finish(x, l, q, t):
    """Given q and t = log(a / q): t <- the terms of log p, l <- d log p / dl."""
    R, P = l.shape
    B = x.shape[0]
    for i in range(R):
        xi = x[i % B]
        for j in range(P):
            v = np.float64(l[i, j])
            xv = np.float64(xi[j])
            a = abs(v)
            qq = q[i, j]
            e = 1.0 - qq
            sig = (1.0 if v >= 0 else e) / (1.0 + e)
            if a < CB_SERIES_BELOW:
                a2 = a * a
                dlog_c = v * (1.0 / 6 - 7 * a2 / 360 + 31 * a2 * a2 / 15120)
            else:
                dlog_c = (1.0 / a - 2 * e / (qq * (2 - qq))) * (1.0 if v > 0 else -1.0)
            t[i, j] = xv * v - max(v, 0.0) + t[i, j]
            l[i, j] = xv - sig + dlog_c


def continuous_bernoulli(x, l, logp, q, t, rows):
    """Continuous Bernoulli from logits l: (R, P); q, t: (R, P) float64 scratch; rows: (R,)
    float64 scratch for the row sums, cast into logp."""
    neg_abs(l, q)
    np.expm1(q, out=q)  # -q
    _cb_ratio(l, q, t)
    np.log(t, out=t)
    _cb_finish(x, l, q, t)
    np.sum(t, axis=1, out=rows)
    logp[...] = rows
