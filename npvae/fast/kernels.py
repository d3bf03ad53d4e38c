"""numba kernels for the loops around the matrix products, each beside its NumPy twin.

The twin (``*_np``) is the specification: it calls the pure functions of `layers.py` and
`distributions.py`, or writes the equation in NumPy. The kernel is the speed: one pass over
memory where NumPy would make several, no temporaries. Tests assert the two agree
(tests/test_kernels.py); ``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python.

Conventions shared by every kernel:

* Kernels write into arrays they are given (``out`` arguments, or in place) and allocate
  nothing, so a training step at a fixed batch size allocates no arrays.
* Scalars arrive already cast to the arrays' dtype (``np.float32(...)`` for float32), so
  float32 stays float32 inside the loops and LLVM can vectorise them.
* Sums that are returned as a loss are accumulated in float64 per column (``colacc``) and
  added up once at the end: a scalar reduction inside the inner loop would stop LLVM
  from vectorising it, because without fastmath it may not reorder floating-point sums.
  No kernel uses fastmath: float64 gradient checks run through these same loops.
* Matrix products are not here: the model calls BLAS with ``np.matmul(a, b, out=...)``.

Where numba loses to NumPy it says so: numba's exp/log are scalar calls (llvmlite from PyPI
has no SVML), while NumPy's exp and log1p ufuncs are SIMD. The Bernoulli and the
learned-variance Gaussian likelihoods therefore let NumPy compute exp and log1p into
preallocated buffers and fuse everything else in numba (`bernoulli_loss_grad`,
`gaussian_learned_loss_grad`); their one-loop versions (`*_fused`) stay here only to be
timed against (python -m benchmarks.kernels). The continuous Bernoulli stays NumPy: the
model calls its `log_prob_and_grad` (through `_likelihood_twin`), which allocates.

Which kernel the model runs is chosen by npvae.backend ("numba" or "numpy").
"""
from __future__ import annotations

import os

# The optimizer kernels split their loop between numba's threads (prange) unless
# NPVAE_PARALLEL_OPTIMIZER=0. Alone, Adam over the reference model's 652,824 float32
# parameters takes 0.3-0.6 ms on one core or two (it streams 18 MB). Inside training it is
# another matter: right after a 2-thread BLAS product, OpenBLAS's worker thread is still
# spin-waiting, and a serial Adam took 2.4 ms per step where the prange version took 0.3
# (fit on MNIST 8k at batch 128: 0.61 s/epoch serial, 0.26 s/epoch parallel, 2 cores).
PARALLEL_OPTIMIZER = os.environ.get("NPVAE_PARALLEL_OPTIMIZER", "1") != "0"
if PARALLEL_OPTIMIZER:
    # numba's OpenMP threads must not spin-wait after their loop either: a spinning thread
    # steals a core from OpenBLAS's next product (measured: 0.6 ms products took 4-20 ms).
    # The user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ..distributions import (LOG_2PI, Bernoulli, Gaussian, GaussianLearned, gaussian_kl,
                            gaussian_kl_backward, reparameterize, reparameterize_backward)
from ..layers import ACTIVATIONS, ELU_ALPHA, LEAKY_SLOPE

# cache=True: compiled code is kept under __pycache__, so a new process loads it instead of
# compiling. error_model="numpy": x / 0 gives inf like NumPy instead of raising, which also
# removes the per-element zero test that stops LLVM from vectorising divisions. It changes
# no arithmetic (unlike fastmath).
_JIT = dict(cache=True, error_model="numpy")

# --------------------------------------------------------------------------- activations
# Integer codes, because numba kernels branch on a number, not a name. `param` is the
# leaky-ReLU slope or the ELU alpha (ignored by the others).

ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4,
             "softplus": 5, "elu": 6}
ACT_PARAMS = {"leaky_relu": LEAKY_SLOPE, "elu": ELU_ALPHA}
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS, ELU = range(7)


@njit(**_JIT, inline="always")
def _act(code, v, param):
    """y = act(v) for one value (same formulas as layers.*_forward)."""
    zero = param * 0  # 0 of the array dtype (param is finite; v - v would be NaN at inf)
    one = zero + 1
    if code == RELU:
        return v if v > zero else zero
    if code == LEAKY_RELU:
        return v if v > zero else param * v
    if code == TANH:
        return np.tanh(v)
    if code == SIGMOID:
        e = np.exp(-abs(v))  # in (0, 1]: never overflows
        return one / (one + e) if v >= zero else e / (one + e)
    if code == SOFTPLUS:
        return max(v, zero) + np.log1p(np.exp(-abs(v)))
    if code == ELU:
        return v if v > zero else param * np.expm1(min(v, zero))
    return v


@njit(**_JIT, inline="always")
def _act_grad_from_y(code, y, param):
    """act'(a) written in terms of y = act(a), so the forward pass need keep only y.

    relu: [y > 0]; leaky: 1 or slope by the sign of y (the sign of a);
    tanh: 1 - y^2; sigmoid: y (1 - y); elu: 1 or y + alpha;
    softplus: sigmoid(a) = 1 - exp(-y) = -expm1(-y)  (since exp(y) = 1 + exp(a)).
    """
    zero = param * 0
    one = zero + 1
    if code == RELU:
        return one if y > zero else zero
    if code == LEAKY_RELU:
        return one if y > zero else param
    if code == TANH:
        return one - y * y
    if code == SIGMOID:
        return y * (one - y)
    if code == SOFTPLUS:
        return -np.expm1(-y)
    if code == ELU:
        return one if y > zero else y + param
    return one


@njit(**_JIT)
def bias_act_forward(a, b, code, param):
    """In place: a <- act(a + b).   a: (R, n) holding x @ W, b: (n,).

    This is a Dense layer's bias and the activation after it in one pass.
    """
    R, n = a.shape
    zero = a.dtype.type(0)
    if code == IDENTITY:
        for i in range(R):
            for j in range(n):
                a[i, j] += b[j]
    elif code == RELU:
        for i in range(R):
            for j in range(n):
                v = a[i, j] + b[j]
                a[i, j] = v if v > zero else zero
    else:
        for i in range(R):
            for j in range(n):
                a[i, j] = _act(code, a[i, j] + b[j], param)


def bias_act_forward_np(a, b, code, param):
    """Twin: the layers.py pure functions, y = act(a + b), written back into a."""
    name = {v: k for k, v in ACT_CODES.items()}[code]
    forward = ACTIVATIONS[name][0]
    y = forward(a + b, param)[0] if name in ACT_PARAMS else forward(a + b)[0]
    a[...] = y


@njit(**_JIT)
def bias_act_backward(dy, y, code, param, db):
    """In place: dy <- da = dy * act'(a); and db = sum_rows da (the bias gradient).

    dy, y: (R, n) with y = act(a) from the forward pass; db: (n,) output.
    The bias-gradient sum rides along the same pass over da.
    """
    R, n = dy.shape
    zero = dy.dtype.type(0)
    for j in range(n):
        db[j] = zero
    if code == IDENTITY:
        for i in range(R):
            for j in range(n):
                db[j] += dy[i, j]
    elif code == RELU:
        for i in range(R):
            for j in range(n):
                g = dy[i, j] if y[i, j] > zero else zero
                dy[i, j] = g
                db[j] += g
    else:
        for i in range(R):
            for j in range(n):
                g = dy[i, j] * _act_grad_from_y(code, y[i, j], param)
                dy[i, j] = g
                db[j] += g


def bias_act_backward_np(dy, y, code, param, db):
    """Twin: layers.*_backward given the cache the forward would keep (rebuilt from y)."""
    name = {v: k for k, v in ACT_CODES.items()}[code]
    backward = ACTIVATIONS[name][1]
    if name == "identity":
        da = dy.copy()
    elif name == "relu":
        da = backward(dy, y)  # y > 0 exactly where a > 0
    elif name == "leaky_relu":
        da = backward(dy, (y, param))  # y has the sign of a
    elif name in ("tanh", "sigmoid"):
        da = backward(dy, y)
    elif name == "softplus":
        a = np.log(np.expm1(y.astype(np.float64)))  # softplus^-1(y)
        da = backward(dy, a.astype(dy.dtype))
    else:  # elu
        da = backward(dy, (y, y, param))
    dy[...] = da
    db[...] = da.sum(axis=0)


# --------------------------------------------------------------------------- Bernoulli
# log p(x|l) = sum_d x_d l_d - softplus(l_d),  softplus(l) = max(l, 0) + log1p(exp(-|l|))
# d/dl log p = x - sigmoid(l),  sigmoid(l) = [l >= 0 ? 1 : e] / (1 + e), e = exp(-|l|).


@njit(**_JIT)
def _bernoulli_prep(a, b, e):
    """In place a <- l = a + b (logits); e <- -|l| (NumPy's SIMD exp then makes it exp(-|l|))."""
    R, P = a.shape
    for i in range(R):
        for j in range(P):
            v = a[i, j] + b[j]
            a[i, j] = v
            e[i, j] = -abs(v)


@njit(**_JIT)
def _bernoulli_finish(x, a, e, s, scale, db, colacc):
    """Given l (in a), e = exp(-|l|), s = log1p(e): accumulate log p, write dloss/dl.

    colacc[j] += x l - (max(l, 0) + s);  a <- scale * (sigmoid(l) - x);  db = sum_rows a.
    """
    R, P = a.shape
    B = x.shape[0]
    zero = a.dtype.type(0)
    one = a.dtype.type(1)
    for j in range(P):
        db[j] = zero
        colacc[j] = 0.0
    for i in range(R):
        xi = x[i % B]
        for j in range(P):
            l = a[i, j]
            xv = xi[j]
            ej = e[i, j]
            colacc[j] += xv * l - (max(l, zero) + s[i, j])
            sig = (one if l >= zero else ej) / (one + ej)
            g = scale * (sig - xv)
            a[i, j] = g
            db[j] += g
    return colacc.sum()


def bernoulli_loss_grad(x, a, b, scale, db, colacc, e, s):
    """Bernoulli log-likelihood and its gradient, fused around NumPy's SIMD exp/log1p.

    x: (B, P) data; a: (L B, P) holding z @ W of the decoder's last layer, overwritten with
    dloss/dl = scale * (sigmoid(l) - x) for l = a + b and scale = 1 / (L B); db: (P,) gets
    sum_rows of it. e, s: (L B, P) scratch; colacc: (P,) float64 scratch.
    Returns sum over all rows of log p(x|l) (a Python float, float64-accumulated).
    """
    _bernoulli_prep(a, b, e)
    np.exp(e, out=e)  # exp(-|l|) in (0, 1]
    np.log1p(e, out=s)  # log(1 + exp(-|l|))
    return _bernoulli_finish(x, a, e, s, scale, db, colacc)


@njit(**_JIT)
def bernoulli_loss_grad_fused(x, a, b, scale, db, colacc):
    """The same as `bernoulli_loss_grad` as one numba loop (scalar exp/log1p): kept to time
    against the split version (benchmarks/kernels.py), not used by the model."""
    R, P = a.shape
    B = x.shape[0]
    zero = a.dtype.type(0)
    one = a.dtype.type(1)
    for j in range(P):
        db[j] = zero
        colacc[j] = 0.0
    for i in range(R):
        for j in range(P):
            l = a[i, j] + b[j]
            xv = x[i % B, j]
            ej = np.exp(-abs(l))
            colacc[j] += xv * l - (max(l, zero) + np.log1p(ej))
            g = scale * ((one if l >= zero else ej) / (one + ej) - xv)
            a[i, j] = g
            db[j] += g
    return colacc.sum()


def _likelihood_twin(lik, x, a, b, scale, db):
    """Shared twin body: l = a + b; (log p, dlogp) from the Likelihood class; a <- -scale dlogp."""
    L = a.shape[0] // x.shape[0]
    out = (a + b).reshape(L, x.shape[0], -1)  # (L, B, P)
    logp, dlogp = lik.log_prob_and_grad(x, out)
    dout = (-scale * dlogp).reshape(a.shape).astype(a.dtype)
    a[...] = dout
    db[...] = dout.sum(axis=0)
    return float(np.sum(logp, dtype=np.float64))


def bernoulli_loss_grad_np(x, a, b, scale, db, colacc=None, e=None, s=None):
    """Twin: distributions.Bernoulli.log_prob_and_grad."""
    return _likelihood_twin(Bernoulli(), x, a, b, scale, db)


# --------------------------------------------------------------------------- Gaussian, fixed sigma


@njit(**_JIT)
def gaussian_loss_grad(x, a, b, inv_var, log_norm, scale, db, colacc):
    """Fixed-sigma Gaussian: log N(x | f, sigma^2 I) and its gradient, f = a + b.

    log p = -0.5 inv_var |x - f|^2 + log_norm, log_norm = -(D/2) log(2 pi sigma^2);
    a <- dloss/df = -scale inv_var (x - f);  db = sum_rows a.  Returns sum_rows log p.
    """
    R, P = a.shape
    B = x.shape[0]
    zero = a.dtype.type(0)
    for j in range(P):
        db[j] = zero
        colacc[j] = 0.0
    g_scale = -scale * inv_var
    for i in range(R):
        for j in range(P):
            r = x[i % B, j] - (a[i, j] + b[j])
            colacc[j] += r * r
            g = g_scale * r
            a[i, j] = g
            db[j] += g
    return -0.5 * inv_var * colacc.sum() + R * log_norm


def gaussian_loss_grad_np(x, a, b, inv_var, log_norm, scale, db, colacc=None):
    """Twin: distributions.Gaussian.log_prob_and_grad with sigma = inv_var^-1/2."""
    return _likelihood_twin(Gaussian(sigma=float(inv_var) ** -0.5), x, a, b, scale, db)


# ------------------------------------------------------------------ Gaussian, learned variance


@njit(**_JIT, inline="always")
def _softplus(v):
    zero = v - v
    return max(v, zero) + np.log1p(np.exp(-abs(v)))


@njit(**_JIT, inline="always")
def _sigmoid(v):
    zero = v - v
    one = zero + 1
    e = np.exp(-abs(v))
    return (one if v >= zero else e) / (one + e)


@njit(**_JIT)
def _gl_prep(a, b, lo, hi, e):
    """In place a <- [f | r] = a + b; e[:, :D] <- -|r - lo|, e[:, D:] <- -|r - hi|."""
    R, P = a.shape
    D = P // 2
    for i in range(R):
        for j in range(P):
            a[i, j] += b[j]
        for j in range(D):
            r = a[i, D + j]
            e[i, j] = -abs(r - lo)
            e[i, D + j] = -abs(r - hi)


@njit(**_JIT)
def _gl_neg_logvar(a, lo, hi, s):
    """Given s = log1p(exp(-|r - lo|)) | log1p(exp(-|r - hi|)): s[:, :D] <- -logvar, where
    logvar = soft_clamp(r) = lo + softplus(r - lo) - softplus(r - hi),
    softplus(u) = max(u, 0) + log1p(exp(-|u|)) = max(u, 0) + s."""
    R, P = a.shape
    D = P // 2
    zero = a.dtype.type(0)
    for i in range(R):
        for j in range(D):
            r = a[i, D + j]
            sp_lo = max(r - lo, zero) + s[i, j]
            sp_hi = max(r - hi, zero) + s[i, D + j]
            s[i, j] = -(lo + sp_lo - sp_hi)


@njit(**_JIT)
def _gl_finish(x, a, e, s, lo, hi, scale, db, colacc):
    """Given e = exp(-|r - lo|) | exp(-|r - hi|), s = -logvar | prec: log p and the gradient."""
    R, P = a.shape
    D = P // 2
    B = x.shape[0]
    zero = a.dtype.type(0)
    one = a.dtype.type(1)
    half = a.dtype.type(0.5)
    for j in range(P):
        db[j] = zero
    for j in range(D):
        colacc[j] = 0.0
    for i in range(R):
        xi = x[i % B]
        for j in range(D):
            r = a[i, D + j]
            res = xi[j] - a[i, j]
            prec = s[i, D + j]
            q = res * res * prec
            colacc[j] += q - s[i, j]  # (x - f)^2 prec + logvar
            e_lo, e_hi = e[i, j], e[i, D + j]
            sig_lo = (one if r >= lo else e_lo) / (one + e_lo)  # sigmoid(r - lo)
            sig_hi = (one if r >= hi else e_hi) / (one + e_hi)  # sigmoid(r - hi)
            gf = -scale * res * prec
            gr = -scale * half * (q - one) * (sig_lo - sig_hi)
            a[i, j] = gf
            a[i, D + j] = gr
            db[j] += gf
            db[D + j] += gr
    return -0.5 * (colacc[:D].sum() + R * D * LOG_2PI)


def gaussian_learned_loss_grad(x, a, b, lo, hi, scale, db, colacc, e, s):
    """Learned-variance Gaussian over out = [f | r] = a + b, a: (L B, 2D), x: (B, D).

    logvar = soft_clamp(r) = lo + softplus(r - lo) - softplus(r - hi); prec = exp(-logvar)
    log p = -0.5 sum_d ((x - f)^2 prec + logvar + log 2 pi)
    a[:, :D] <- -scale (x - f) prec
    a[:, D:] <- -scale 0.5 ((x - f)^2 prec - 1) (sigmoid(r - lo) - sigmoid(r - hi))
    db = sum_rows a; e, s: (L B, 2D) scratch; colacc: (2D,) float64 scratch.
    Returns sum_rows log p. Like the Bernoulli, NumPy's SIMD ufuncs take the three
    transcendental passes (exp, log1p, exp) and numba fuses the arithmetic around them.
    """
    D = a.shape[1] // 2
    _gl_prep(a, b, lo, hi, e)
    np.exp(e, out=e)  # exp(-|r - lo|) | exp(-|r - hi|)
    np.log1p(e, out=s)
    _gl_neg_logvar(a, lo, hi, s)  # s[:, :D] = -logvar
    np.exp(s[:, :D], out=s[:, D:])  # prec = exp(-logvar)
    return _gl_finish(x, a, e, s, lo, hi, scale, db, colacc)


@njit(**_JIT)
def gaussian_learned_loss_grad_fused(x, a, b, lo, hi, scale, db, colacc):
    """Learned-variance Gaussian over out = [f | r] = a + b, a: (L B, 2D).

    logvar = soft_clamp(r) = lo + softplus(r - lo) - softplus(r - hi); prec = exp(-logvar)
    log p = -0.5 sum_d ((x - f)^2 prec + logvar + log 2 pi)
    a[:, :D] <- -scale (x - f) prec
    a[:, D:] <- -scale 0.5 ((x - f)^2 prec - 1) (sigmoid(r - lo) - sigmoid(r - hi))
    db = sum_rows a. Returns sum_rows log p. One loop with scalar exp / log1p: slower than the
    split `gaussian_learned_loss_grad` (benchmarks/kernels.py), kept for that comparison.
    """
    R, P = a.shape
    D = P // 2
    B = x.shape[0]
    zero = a.dtype.type(0)
    one = a.dtype.type(1)
    half = a.dtype.type(0.5)
    for j in range(P):
        db[j] = zero
    for j in range(D):
        colacc[j] = 0.0
    for i in range(R):
        for j in range(D):
            f = a[i, j] + b[j]
            r = a[i, D + j] + b[D + j]
            logvar = lo + _softplus(r - lo) - _softplus(r - hi)
            prec = np.exp(-logvar)
            res = x[i % B, j] - f
            q = res * res * prec
            colacc[j] += q + logvar
            gf = -scale * res * prec
            gr = -scale * half * (q - one) * (_sigmoid(r - lo) - _sigmoid(r - hi))
            a[i, j] = gf
            a[i, D + j] = gr
            db[j] += gf
            db[D + j] += gr
    return -0.5 * (colacc[:D].sum() + R * D * LOG_2PI)


def gaussian_learned_loss_grad_np(x, a, b, lo, hi, scale, db, colacc=None, e=None, s=None):
    """Twin: distributions.GaussianLearned.log_prob_and_grad (its default clamp bounds)."""
    return _likelihood_twin(GaussianLearned(), x, a, b, scale, db)


# ---------------------------------------------------------- posterior: reparameterisation + KL


@njit(**_JIT)
def reparam_kl_forward(h, b, eps, z, std):
    """The encoder head's bias, the reparameterised sample and the analytic KL.

    In place h <- h + b = [mu | logvar], h: (B, 2m); std <- sigma = exp(0.5 logvar), (B, m);
    z[l B + i] <- mu_i + std_i * eps[l, i], z: (L B, m), eps: (L, B, m).
    Returns sum_i KL_i in the sigma form, 2 KL_i = |mu|^2 + |sigma|^2 - 1^T logvar - m
    (sigma^2 = exp(logvar): one exp per entry instead of two).
    """
    L, B, m = eps.shape
    half = h.dtype.type(0.5)
    one = h.dtype.type(1)
    kl = 0.0
    for i in range(B):
        for j in range(2 * m):
            h[i, j] += b[j]
        for j in range(m):
            mu, lv = h[i, j], h[i, m + j]
            sd = np.exp(half * lv)
            std[i, j] = sd
            kl += half * (mu * mu + sd * sd - one - lv)
    for l in range(L):
        for i in range(B):
            for j in range(m):
                z[l * B + i, j] = h[i, j] + std[i, j] * eps[l, i, j]
    return kl


def reparam_kl_forward_np(h, b, eps, z, std):
    """Twin: distributions.reparameterize and gaussian_kl."""
    L, B, m = eps.shape
    h += b
    mu, logvar = h[:, :m], h[:, m:]
    zz, sd = reparameterize(mu, logvar, eps)  # (L, B, m), (B, m)
    z[...] = zz.reshape(L * B, m)
    std[...] = sd
    return float(np.sum(gaussian_kl(mu, logvar), dtype=np.float64))


@njit(**_JIT)
def reparam_kl_backward(dz, eps, h, std, kl_scale, dh, db):
    """Gradient at the encoder head's output [mu | logvar], the KL term's included.

    dz: (L B, m) = dloss/dz; kl_scale = beta / B; std = exp(0.5 logvar) from the forward.
    dh[:, :m] = sum_l dz + kl_scale * mu
    dh[:, m:] = 0.5 std sum_l dz eps + kl_scale * 0.5 (std^2 - 1)     (std^2 = exp(logvar))
    db = sum_rows dh (the head's bias gradient).  dh: (B, 2m), db: (2m,).
    Loops run over contiguous j innermost, with no transcendental call, so they vectorise.
    """
    L, B, m = eps.shape
    zero = dh.dtype.type(0)
    half = dh.dtype.type(0.5)
    one = dh.dtype.type(1)
    for i in range(B):  # the sums over the L samples, in order l = 0, 1, ...
        for j in range(m):
            dh[i, j] = dz[i, j]
            dh[i, m + j] = dz[i, j] * eps[0, i, j]
    for l in range(1, L):
        for i in range(B):
            for j in range(m):
                d = dz[l * B + i, j]
                dh[i, j] += d
                dh[i, m + j] += d * eps[l, i, j]
    for j in range(2 * m):
        db[j] = zero
    for i in range(B):
        for j in range(m):
            sd = std[i, j]
            g_mu = dh[i, j] + kl_scale * h[i, j]
            g_lv = dh[i, m + j] * (half * sd) + kl_scale * (half * (sd * sd - one))
            dh[i, j] = g_mu
            dh[i, m + j] = g_lv
            db[j] += g_mu
            db[m + j] += g_lv


def reparam_kl_backward_np(dz, eps, h, std, kl_scale, dh, db):
    """Twin: distributions.reparameterize_backward + kl_scale * gaussian_kl_backward."""
    L, B, m = eps.shape
    dmu, dlogvar = reparameterize_backward(dz.reshape(L, B, m), eps, std)
    dkl_dmu, dkl_dlogvar = gaussian_kl_backward(h[:, :m], h[:, m:])
    dh[:, :m] = dmu + kl_scale * dkl_dmu
    dh[:, m:] = dlogvar + kl_scale * dkl_dlogvar
    db[...] = dh.sum(axis=0)


# --------------------------------------------------------------------------- optimizers
# Both run over the model's flat parameter buffer. Each loop is compiled twice: split
# between numba's threads with prange (`adam_update`, `sgd_update`) and serial
# (`*_serial`, where prange is a plain range); optim.py picks by PARALLEL_OPTIMIZER (top).


def _adam_loop(p, g, m, v, b1, b2, step, c2, eps, decay, tiny):
    """Adam, elementwise over flat arrays (all updated in place):

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- decay p - step m / (sqrt(v / c2) + eps)
    with step = lr / (1 - b1^t), c2 = 1 - b2^t, decay = 1 - lr * weight_decay.

    m and v entries smaller than `tiny` (the smallest normal number of the dtype) are stored
    as 0. A parameter whose gradient is almost always 0 (a weight from a corner pixel) has
    its m decay by b1 per step into the subnormal range, where x86 arithmetic is ~100 times
    slower: on Fashion-MNIST at batch 32, 35,000 subnormal m made Adam 10x slower (3.2 ms
    per step). What is dropped is below 1e-38, against eps = 1e-8 in the denominator.
    """
    one = p.dtype.type(1)
    zero = p.dtype.type(0)
    for i in prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + (one - b1) * gi
        vi = b2 * v[i] + (one - b2) * (gi * gi)
        mi = mi if abs(mi) >= tiny else zero
        vi = vi if vi >= tiny else zero
        m[i] = mi
        v[i] = vi
        p[i] = decay * p[i] - step * mi / (np.sqrt(vi / c2) + eps)


# The serial twins are not cached: numba names a cache file after the Python function, so
# the parallel and serial builds of one loop would share (and overwrite) one cache entry.
_JIT_UNCACHED = dict(_JIT, cache=False)
adam_update = njit(**_JIT, parallel=True)(_adam_loop)
adam_update_serial = njit(**_JIT_UNCACHED)(_adam_loop)


def adam_update_np(p, g, m, v, b1, b2, step, c2, eps, decay, tiny):
    """Twin: optim.Adam's reference equations as NumPy array expressions, plus the kernel's
    flush of subnormal m and v to 0."""
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    m[np.abs(m) < tiny] = 0
    v[v < tiny] = 0
    p *= decay
    p -= step * m / (np.sqrt(v / c2) + eps)


def _sgd_loop(p, g, v, lr, momentum, nesterov, tiny):
    """SGD in place. momentum = 0: p <- p - lr g (v unused).
    Otherwise v <- momentum v + g, then p <- p - lr v, or p <- p - lr (g + momentum v) (Nesterov).
    Like Adam's m, a velocity below `tiny` (subnormal) is stored as 0.
    """
    zero = p.dtype.type(0)
    if momentum == zero:
        for i in prange(p.size):
            p[i] -= lr * g[i]
    else:
        for i in prange(p.size):
            vi = momentum * v[i] + g[i]
            vi = vi if abs(vi) >= tiny else zero
            v[i] = vi
            p[i] -= lr * (g[i] + momentum * vi) if nesterov else lr * vi


sgd_update = njit(**_JIT, parallel=True)(_sgd_loop)
sgd_update_serial = njit(**_JIT_UNCACHED)(_sgd_loop)


def sgd_update_np(p, g, v, lr, momentum, nesterov, tiny):
    """Twin: optim.SGD's reference equations, plus the kernel's flush of subnormal v."""
    if momentum == 0:
        p -= lr * g
        return
    v *= momentum
    v += g
    v[np.abs(v) < tiny] = 0
    p -= lr * (g + momentum * v) if nesterov else lr * v
