"""Which implementation runs the training step: fused numba kernels or the NumPy reference.

* ``"numba"`` (default): `VAE._loss_and_grads` and the optimizers' updates run the kernels of
  `npvae.kernels` on preallocated workspaces (BLAS still does every matrix product).
* ``"numpy"``: the readable reference path in `model.py` / `optim.py`, which the kernels
  are tested against.

Choose with ``npvae.set_backend("numpy")``, or before import with the environment variable
``NPVAE_BACKEND=numpy``. Both compute the same numbers up to floating-point rounding.
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


def get_backend():
    """The name of the active backend, "numba" or "numpy"."""
    return _current


def set_backend(name):
    """Select the backend for every model and optimizer; returns the previous name."""
    global _current
    previous, _current = _current, _check(name)
    return previous


@contextlib.contextmanager
def use_backend(name):
    """Run a block under backend `name`, restoring the previous one afterwards."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)
