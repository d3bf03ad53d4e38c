"""The numba options every kernel is compiled with, in one place.

* ``cache=True``: compiled code is kept under __pycache__, so a new process loads it instead of
  compiling it again.
* ``error_model="numpy"``: x / 0 gives inf, as in NumPy, instead of raising; this also drops
  the per-element zero test that stops LLVM from vectorising divisions. It changes no
  arithmetic. No kernel uses ``fastmath``: the float64 gradient checks run through these loops.

The optimizer kernels split their loop between numba's threads (prange) unless
``NPVAE_PARALLEL_OPTIMIZER=0``. Alone, Adam over the 652,824 float32 parameters of a
784-400-20 VAE takes 0.3-0.6 ms on one core or two; inside training, right after a 2-thread
BLAS product, OpenBLAS's worker thread is still spin-waiting, and a serial Adam took 2.4 ms
per step where the prange version took 0.3 (MNIST 8k, batch 128, 2 cores).
"""
from __future__ import annotations

import os

PARALLEL_OPTIMIZER = os.environ.get("NPVAE_PARALLEL_OPTIMIZER", "1") != "0"
if PARALLEL_OPTIMIZER:
    # numba's OpenMP threads must not spin-wait after their loop: a spinning thread steals a
    # core from OpenBLAS's next product (seen: 0.6 ms products took 4-20 ms). The user's own
    # setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from numba import njit, prange  # noqa: E402,F401

JIT = dict(cache=True, error_model="numpy")
# numba names a cache file after the Python function, so a second build of one loop (the
# serial optimizer twins) must not share the first one's cache entry.
JIT_UNCACHED = dict(JIT, cache=False)
