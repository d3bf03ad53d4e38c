"""Kernels of the Dense block: bias + activation, its backward with the bias gradient, and
the per-row scaling of a gradient. Their NumPy twins are in npvae/layers.py.

Activations are passed as integer codes (numba branches on a number, not a name), with
`param` the leaky-ReLU slope or the ELU alpha, cast to the arrays' dtype; the codes are
npvae.layers.ACT_CODES.
"""
from __future__ import annotations

import numpy as np

from ..layers import ACT_CODES
from .jit import JIT, njit

IDENTITY, RELU, LEAKY_RELU, TANH = (ACT_CODES[k] for k in ("identity", "relu", "leaky_relu", "tanh"))
SIGMOID, SOFTPLUS, ELU = (ACT_CODES[k] for k in ("sigmoid", "softplus", "elu"))


@njit(**JIT, inline="always")
def _act(code, v, param):
    """y = act(v) for one value (the formulas of layers.*_forward)."""
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


@njit(**JIT, inline="always")
def _act_grad_from_y(code, y, param):
    """act'(a) written in terms of y = act(a), so the forward pass keeps only y.

    relu: [y > 0]; leaky: 1 or slope by the sign of y (the sign of a); tanh: 1 - y^2;
    sigmoid: y (1 - y); elu: 1 or y + alpha; softplus: sigmoid(a) = 1 - exp(-y) = -expm1(-y)
    (since exp(y) = 1 + exp(a)).
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


@njit(**JIT)
def bias_act_forward(a, b, code, param):
    """In place a <- act(a + b).   a: (R, n) holding x @ W, b: (n,)."""
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


@njit(**JIT)
def bias_act_backward(dy, y, code, param, db):
    """In place dy <- da = dy * act'(a), and db <- sum over rows of da (the bias gradient).

    dy, y: (R, n) with y = act(a) from the forward pass; db: (n,).
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


@njit(**JIT)
def scale_rows(d, w):
    """In place d[r, :] <- w[r] * d[r, :].   d: (R, n), w: (R,)."""
    R, n = d.shape
    for i in range(R):
        wi = w[i]
        for j in range(n):
            d[i, j] *= wi


@njit(**JIT)
def add_scaled(dst, src, alpha):
    """In place dst <- dst + alpha * src.   dst, src: (R, n); src may be a strided view."""
    R, n = dst.shape
    for i in range(R):
        for j in range(n):
            dst[i, j] += alpha * src[i, j]
