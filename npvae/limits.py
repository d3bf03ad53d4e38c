"""The sizes npvae checks before it allocates anything a setting or a file asks for.

Two caps, each read from the environment when a check runs (so a caller can raise it for
one process), each with a default far above what a small MLP VAE needs and far below
what would exhaust a workstation:

``NPVAE_MAX_PARAMS`` (default 100,000,000)
    parameters in one model. The default digits model has 70 thousand, the MNIST models
    of the papers about 1 million; 10^8 float32 parameters are 400 MB, and training holds
    four copies (parameters, gradients, Adam's two moments).
``NPVAE_MAX_BYTES`` (default 4 GiB)
    bytes in one array read from a file (a dataset's images, an array in a save file) or
    made for the data (the one-hot labels of a conditional run, a batch's buffers, the
    noise of an evaluation).

A request above a cap raises `LimitError` (a ValueError) saying what asked, how much it
asks for, the cap, and the variable that raises it, e.g.

    the model needs 100,000,768,010 parameters (400.0 GB as float32), above the limit of
    100,000,000 (set NPVAE_MAX_PARAMS to raise it)
"""
from __future__ import annotations

import os

PARAMS_VARIABLE, BYTES_VARIABLE = "NPVAE_MAX_PARAMS", "NPVAE_MAX_BYTES"
DEFAULT_MAX_PARAMS = 100_000_000
DEFAULT_MAX_BYTES = 4 * 2**30


class LimitError(ValueError):
    """A size above one of npvae's caps; the message says which cap and how to raise it."""


def _cap(variable, default):
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise LimitError(f"{variable}={text!r} is not a number") from None
    if value < 1:
        raise LimitError(f"{variable}={text!r} must be at least 1")
    return value


def max_params():
    """The largest number of parameters a model may have ($NPVAE_MAX_PARAMS)."""
    return _cap(PARAMS_VARIABLE, DEFAULT_MAX_PARAMS)


def max_bytes():
    """The largest array, in bytes, npvae reads or makes for data ($NPVAE_MAX_BYTES)."""
    return _cap(BYTES_VARIABLE, DEFAULT_MAX_BYTES)


def show_bytes(n):
    """A byte count for people: 512 B, 3.1 MB, 400.0 GB (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_params(n, itemsize, what="the model"):
    """n (an int) unless it is above max_params(); LimitError naming `what` otherwise."""
    cap = max_params()
    if n > cap:
        kind = {4: "float32", 8: "float64"}.get(itemsize, f"{itemsize}-byte numbers")
        raise LimitError(f"{what} needs {n:,} parameters ({show_bytes(n * itemsize)} as {kind}), "
                         f"above the limit of {cap:,} (set {PARAMS_VARIABLE} to raise it)")
    return n


def check_bytes(nbytes, what):
    """nbytes unless it is above max_bytes(); LimitError naming `what` otherwise."""
    cap = max_bytes()
    if nbytes > cap:
        raise LimitError(f"{what} needs {show_bytes(nbytes)}, above the limit of "
                         f"{show_bytes(cap)} (set {BYTES_VARIABLE} to raise it, in bytes)")
    return nbytes


def check_array(shape, itemsize, what):
    """check_bytes for an array of `shape` and `itemsize` (exact integer arithmetic)."""
    n = 1
    for s in shape:
        n *= int(s)
    return check_bytes(n * int(itemsize), what)
