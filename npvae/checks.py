"""Input checks shared by the models: every error names the array and the problem."""
from __future__ import annotations

import numpy as np


def positive_int(value, what):
    """int(value), or ValueError if it is not a positive whole number."""
    if isinstance(value, (bool, np.bool_)) or int(value) != value or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_data(x, name, width, width_name, dtype, likelihood=None):
    """Return x as a (B, width) array of `dtype`, or raise an error naming the problem.

    Checks: a float dtype (integers such as uint8 images must be scaled to floats first),
    two dimensions with the right width, at least one row, no NaN or inf, and, when a
    likelihood is given, values inside its support (e.g. [0, 1] for the Bernoulli).
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} has dtype {x.dtype}; npvae needs floating-point data "
                        f"(for images: x.astype(np.float32) / 255)")
    if x.ndim != 2 or x.shape[1] != width:
        hint = " (for a single example use x.reshape(1, -1))" if x.ndim == 1 else ""
        raise ValueError(f"{name} has shape {x.shape}; expected (batch, {width_name}) = "
                         f"(B, {width}){hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    if not np.isfinite(x).all():
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} inf values")
    if likelihood is not None:
        likelihood.check_data(x)
    return x.astype(dtype, copy=False)


def check_noise(eps, name, sample_shape, axes_text, dtype):
    """Return noise `eps` of shape (L, *sample_shape) as `dtype`, or raise naming the problem.

    axes_text names the axes for the message, e.g. "(L, B, latent_dim)".
    """
    eps = np.asarray(eps)
    sample_shape = tuple(sample_shape)
    if eps.dtype.kind != "f":
        raise TypeError(f"{name} has dtype {eps.dtype}; expected floating point")
    if eps.ndim != len(sample_shape) + 1 or eps.shape[1:] != sample_shape:
        hint = f" (add the sample axis: {name}[None])" if eps.shape == sample_shape else ""
        expected = "(L, " + ", ".join(map(str, sample_shape)) + ")"
        raise ValueError(f"{name} has shape {eps.shape}; expected {axes_text} = {expected}{hint}")
    if not np.isfinite(eps).all():
        raise ValueError(f"{name} contains NaN or inf")
    return eps.astype(dtype, copy=False)
