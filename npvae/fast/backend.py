"""Which implementation the blocks run: the numba kernels or their NumPy twins.

* ``"numba"`` (default): each block (Dense, likelihood, latent layer, objective weights,
  optimizer) runs its kernel from `npvae.fast.kernels` on buffers it owns; BLAS still does
  every matrix product.
* ``"numpy"``: each block runs its NumPy twin, which reads like the equation and is what the
  kernel is tested against.

A model's training step is written once and runs on both; the choice is made inside each
block (``K = backend.kernels()``: the kernel module, or None for the twins). Choose with
``npvae.set_backend("numpy")``, or before import with ``NPVAE_BACKEND=numpy``. Both compute
the same numbers up to floating-point rounding.
"""
from __future__ import annotations

import contextlib
import os

BACKENDS = ("numba", "numpy")
ENV_VAR = "NPVAE_BACKEND"


def _check(name):
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    if key == "numba":
        try:
            import numba  # noqa: F401
        except ImportError as err:  # pragma: no cover - numba is a dependency
            raise ImportError("the 'numba' backend needs numba installed; "
                              "use set_backend('numpy')") from err
    return key


_current = _check(os.environ.get(ENV_VAR, "numba") or "numba")
_kernels = None


def get_backend():
    """The name of the active backend, "numba" or "numpy"."""
    return _current


def set_backend(name):
    """Select the backend for every block; returns the previous name."""
    global _current
    previous, _current = _current, _check(name)
    return previous


def kernels():
    """The module of numba kernels when the "numba" backend is on, else None."""
    global _kernels
    if _current != "numba":
        return None
    if _kernels is None:
        from . import kernels as module

        _kernels = module
    return _kernels


@contextlib.contextmanager
def use_backend(name):
    """Run a block under backend `name`, restoring the previous one afterwards."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)
