"""Kernels of the optimizers: one pass over the model's flat parameter buffer. Their NumPy
twins, the specification, are in npvae/optim.py (`adam_update_np`, `sgd_update_np`).

Each loop is compiled twice: split between numba's threads with prange (`adam_update`,
`sgd_update`) and serial (`*_serial`, where prange is a plain range); npvae.optim picks by
PARALLEL_OPTIMIZER (see npvae/fast/jit.py).
"""
from __future__ import annotations

import numpy as np

from .jit import JIT, JIT_UNCACHED, njit, prange


def _adam_loop(p, g, m, v, b1, b2, step, c2, eps, decay, tiny):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  p <- decay p - step m / (sqrt(v / c2) + eps),
    with m and v entries below `tiny` stored as 0 (see optim.adam_update_np for why)."""
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


adam_update = njit(**JIT, parallel=True)(_adam_loop)
adam_update_serial = njit(**JIT_UNCACHED)(_adam_loop)


def _sgd_loop(p, g, v, lr, momentum, nesterov, tiny):
    """momentum = 0: p <- p - lr g (v unused). Otherwise v <- momentum v + g (below `tiny`
    stored as 0), then p <- p - lr v, or p <- p - lr (g + momentum v) (Nesterov)."""
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


sgd_update = njit(**JIT, parallel=True)(_sgd_loop)
sgd_update_serial = njit(**JIT_UNCACHED)(_sgd_loop)
