"""The likelihoods p(x|z): log p(x|z) summed over the D data dimensions, and its gradient.

A likelihood turns the decoder's output `out` into log p(x|z) and gives d log p(x|z) / d out
(the *ascent* direction; the model negates it). In `log_prob` and `log_prob_and_grad`, `x`
has shape (B, D) and `out` (..., B, P): leading Monte Carlo axes broadcast. These read like
the equations and are the specification.

The training step calls `log_prob_and_grad_rows(x, out)` instead, the likelihood's block:
out is the decoder's (R, P) buffer with R = L B (row r is example r % B), it returns log p
per row and overwrites out with the gradient. Under the "numba" backend the built-in
likelihoods run a kernel of npvae/fast/likelihoods.py there; a likelihood without a kernel
(and every likelihood under the "numpy" backend) runs its NumPy twin, `log_prob_and_grad`.
Derivations: notebooks/05_likelihoods.ipynb.
"""
from __future__ import annotations

import numpy as np

from .distributions import LOG_2PI
from .fast import backend
from .layers import sigmoid, softplus
from .params import Workspace



class Likelihood:
    """Interface of an observation model p(x | decoder output).

    A likelihood turns the decoder's output for each example, P numbers (`n_outputs` of
    the D data dimensions), into log p(x|z), its gradient and the mean E[x|z]. Shapes: x
    is (B, D); `out` is (..., B, P), where the leading axes are the L samples of z (or
    none).
    """

    name = "likelihood"
    support = (-np.inf, np.inf)  # closed interval of valid x values

    def n_outputs(self, D):
        """How many decoder outputs parameterise D data dimensions.

        Parameters
        ----------
        D : int
            The data dimensions.

        Returns
        -------
        int
            P: D, or 2D for GaussianLearned (a mean and a log-variance per dimension).
        """
        return D

    def log_prob(self, x, out):
        """log p(x|z) summed over data dimensions, every normalising constant included.

        Parameters
        ----------
        x : array, shape (B, D)
            The data.
        out : array, shape (..., B, P)
            The decoder's output for each example (and each sample of z).

        Returns
        -------
        array, shape (..., B)
            log p(x_b | z) in nats.
        """
        raise NotImplementedError

    def log_prob_and_grad(self, x, out):
        """log p(x|z) and its gradient with respect to the decoder's output.

        Parameters
        ----------
        x : array, shape (B, D)
            The data.
        out : array, shape (..., B, P)
            The decoder's output.

        Returns
        -------
        log_prob : array, shape (..., B)
            As `log_prob`.
        grad : array, shape (..., B, P)
            d log p(x_b | z) / d out, entry by entry.
        """
        raise NotImplementedError

    def mean(self, out):
        """E[x | z]: what a model's `decode` returns.

        Parameters
        ----------
        out : array, shape (..., P)
            The decoder's output.

        Returns
        -------
        array, shape (..., D)
            The mean of p(x|z) (pixel probabilities for the Bernoulli).
        """
        raise NotImplementedError

    def config(self):
        """A JSON-able dict that `make_likelihood` turns back into this likelihood.

        Returns
        -------
        dict
            ``{"name": ...}`` and the likelihood's arguments (a Gaussian's ``sigma``).
        """
        return {"name": self.name}

    def log_prob_and_grad_rows(self, x, out):
        """The block: (log p per row, (R,) buffer; out overwritten with d log p / d out).

        x: (B, D); out: (R, P) with R = L B. The returned arrays are reused by the next call.
        """
        ws = self.__dict__.setdefault("_ws", Workspace())
        logp = ws.get("logp", (out.shape[0],), out.dtype)
        K = backend.kernels()
        if K is None or not self._kernel(K, x, out, logp, ws):
            L, B = out.shape[0] // x.shape[0], x.shape[0]
            lp, dout = self.log_prob_and_grad(x, out.reshape(L, B, -1))
            logp[...] = lp.reshape(-1)
            out[...] = dout.reshape(out.shape)
        return logp, out

    def _kernel(self, K, x, out, logp, ws):
        """Run this likelihood's kernel into (logp, out) and return True; False: no kernel."""
        return False

    def check_data(self, x):
        """Raise ValueError if x holds values outside the likelihood's support.

        Parameters
        ----------
        x : array, shape (B, D)
            The data; [0, 1] for the Bernoulli and the continuous Bernoulli, any finite
            value for the Gaussians.

        Raises
        ------
        ValueError
            Naming the range of x, the support and what to do.
        """
        lo, hi = self.support
        if lo == -np.inf and hi == np.inf:
            return
        xmin, xmax = float(np.min(x)), float(np.max(x))
        if xmin < lo or xmax > hi:
            raise ValueError(
                f"x has values in [{xmin:g}, {xmax:g}], outside the support [{lo:g}, {hi:g}] "
                f"of the {self.name} likelihood (scale the data to [0, 1], or use "
                f"likelihood='gaussian')")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Bernoulli(Likelihood):
    """Bernoulli from logits l (one per pixel).

    The decoder outputs P = D logits; for data x in [0, 1]::

        log p(x|l) = sum_d x_d * l_d - softplus(l_d)            (stable for any l)
        d/dl      = x - sigmoid(l)

    This is log(sigmoid(l)^x (1 - sigmoid(l))^(1 - x)) rewritten so that no probability is
    ever formed, so nothing needs clipping. For x in (0, 1) it is the binary
    cross-entropy, not a normalised density (see ContinuousBernoulli).
    """

    name = "bernoulli"
    support = (0.0, 1.0)

    def log_prob(self, x, out):
        return np.sum(x * out - softplus(out), axis=-1)

    def log_prob_and_grad(self, x, out):
        return self.log_prob(x, out), x - sigmoid(out)

    def mean(self, out):
        return sigmoid(out)

    def _kernel(self, K, x, out, logp, ws):
        K.bernoulli(x, out, logp, ws.get("e", out.shape, out.dtype), ws.get("s", out.shape, out.dtype))
        return True


class Gaussian(Likelihood):
    """Gaussian with a fixed standard deviation sigma on every dimension.

    The decoder outputs P = D means f::

        log N(x | f, sigma^2 I) = -|x - f|^2 / (2 sigma^2) - (D / 2) log(2 pi sigma^2)
        d/df                    = (x - f) / sigma^2

    Parameters
    ----------
    sigma : float
        The standard deviation sigma_x of the decoder's noise, > 0; a smaller sigma
        weighs reconstruction more against the KL term.
    """

    name = "gaussian"

    def __init__(self, sigma=1.0):
        sigma = float(sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"Gaussian sigma must be a positive finite number, got {sigma}")
        self.sigma = sigma

    def log_prob(self, x, out):
        D = x.shape[-1]
        r = x - out
        return (-0.5 / self.sigma**2) * np.sum(r * r, axis=-1) \
            - 0.5 * D * (LOG_2PI + 2 * np.log(self.sigma))

    def log_prob_and_grad(self, x, out):
        return self.log_prob(x, out), (x - out) / self.sigma**2

    def mean(self, out):
        return out.copy()

    def config(self):
        return {"name": self.name, "sigma": self.sigma}

    def _kernel(self, K, x, out, logp, ws):
        dt = out.dtype.type
        log_norm = -0.5 * x.shape[1] * (LOG_2PI + 2 * np.log(self.sigma))
        K.gaussian(x, out, logp, dt(self.sigma ** -2), log_norm, ws.get("s", out.shape, out.dtype))
        return True


# Learned log-variances are squashed into [LOGVAR_MIN, LOGVAR_MAX] (std between about
# 0.011 and 90) so that a decoder which shrinks a variance towards zero on a pixel that is
# always 0 cannot drive the loss to -inf, and no exp overflows.
LOGVAR_MIN, LOGVAR_MAX = -9.0, 9.0


def soft_clamp(r, lo=LOGVAR_MIN, hi=LOGVAR_MAX):
    """lo + softplus(r - lo) - softplus(r - hi): smooth, increasing, within (lo, hi).

    Inside the interval it is close to the identity: soft_clamp(r) - r is about
    exp(lo - r) - exp(r - hi) (so soft_clamp(0) = 0 for symmetric bounds, and it is off by
    4e-4 at r = +-1 for the default bounds).
    """
    return lo + softplus(r - lo) - softplus(r - hi)


def soft_clamp_backward(r, lo=LOGVAR_MIN, hi=LOGVAR_MAX):
    """d soft_clamp / dr = sigmoid(r - lo) - sigmoid(r - hi), in (0, 1)."""
    return sigmoid(r - lo) - sigmoid(r - hi)


class GaussianLearned(Likelihood):
    """Gaussian with a per-dimension variance predicted by the decoder.

    The decoder outputs P = 2D values [f | r]; logvar = soft_clamp(r) in
    (LOGVAR_MIN, LOGVAR_MAX)::

        log p     = -0.5 * sum_d ((x_d - f_d)^2 exp(-logvar_d) + logvar_d + log 2 pi)
        d/df      = (x - f) * exp(-logvar)
        d/dlogvar = 0.5 * ((x - f)^2 * exp(-logvar) - 1),  then times soft_clamp'(r).
    """

    name = "gaussian-learned"

    def n_outputs(self, D):
        return 2 * D

    def _split(self, out):
        D = out.shape[-1] // 2
        return out[..., :D], out[..., D:]

    def log_prob(self, x, out):
        f, r = self._split(out)
        logvar = soft_clamp(r)
        return -0.5 * np.sum((x - f) ** 2 * np.exp(-logvar) + logvar + LOG_2PI, axis=-1)

    def log_prob_and_grad(self, x, out):
        f, r = self._split(out)
        logvar = soft_clamp(r)
        prec = np.exp(-logvar)
        res = x - f
        logp = -0.5 * np.sum(res * res * prec + logvar + LOG_2PI, axis=-1)
        dout = np.empty_like(out)
        D = f.shape[-1]
        dout[..., :D] = res * prec
        dout[..., D:] = 0.5 * (res * res * prec - 1) * soft_clamp_backward(r)
        return logp, dout

    def mean(self, out):
        return self._split(out)[0].copy()

    def _kernel(self, K, x, out, logp, ws):
        dt = out.dtype.type
        K.gaussian_learned(x, out, logp, dt(LOGVAR_MIN), dt(LOGVAR_MAX),
                           ws.get("e", out.shape, out.dtype), ws.get("s", out.shape, out.dtype))
        return True

    def variance(self, out):
        """exp(logvar) per dimension: the decoder's predicted variance.

        Parameters
        ----------
        out : array, shape (..., 2D)
            The decoder's output [f | r].

        Returns
        -------
        array, shape (..., D)
            exp(soft_clamp(r)), between exp(LOGVAR_MIN) and exp(LOGVAR_MAX).
        """
        return np.exp(soft_clamp(self._split(out)[1]))


def cb_log_norm(l):
    """log C(l), the continuous Bernoulli log-normaliser in terms of the logit l.

    With lambda = sigmoid(l), C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) simplifies to
    C(l) = l / tanh(l / 2) (C(0) = 2). With u = l / 2, log C = log 2 + log(u / tanh u);
    for |u| < 1e-2 the series u / tanh u = 1 + u^2/3 - u^4/45 + 2u^6/945 avoids 0/0.
    Evaluated in float64 whatever the input dtype.
    """
    u = 0.5 * np.asarray(l, dtype=np.float64)
    au = np.abs(u)
    small = au < 1e-2
    u2 = u * u
    series = np.log1p(u2 / 3 - u2 * u2 / 45 + 2 * u2**3 / 945)
    safe = np.where(small, 1.0, au)
    direct = np.log(safe) - np.log(np.tanh(safe))
    return np.log(2.0) + np.where(small, series, direct)


def cb_log_norm_grad(l):
    """d log C / dl = 1/l - 1/sinh(l); for |l| < 2e-2 the series l/6 - 7 l^3/360 + 31 l^5/15120."""
    l = np.asarray(l, dtype=np.float64)
    small = np.abs(l) < 2e-2
    safe = np.where(small, 1.0, l)
    with np.errstate(over="ignore"):
        direct = 1 / safe - 1 / np.sinh(safe)  # sinh overflows to inf past |l| ~ 710: 1/inf = 0
    l2 = l * l
    series = l * (1 / 6 - 7 * l2 / 360 + 31 * l2 * l2 / 15120)
    return np.where(small, series, direct)


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019) from logits l, for x in [0, 1].

    The decoder outputs P = D logits. The log-density is the Bernoulli cross-entropy plus
    the log-normaliser log C(l) that makes it a density on [0, 1] (see `cb_log_norm`)::

        log p(x|l) = sum_d x_d l_d - softplus(l_d) + log C(l_d)
        d/dl       = x - sigmoid(l) + 1/l - 1/sinh(l)
        E[x]       = sigmoid(l) / tanh(l/2) - 1/l = 1/2 + (coth(l/2) - 2/l) / 2
    """

    name = "continuous-bernoulli"
    support = (0.0, 1.0)

    def log_prob(self, x, out):
        ln = cb_log_norm(out).astype(out.dtype)
        return np.sum(x * out - softplus(out) + ln, axis=-1)

    def log_prob_and_grad(self, x, out):
        dout = x - sigmoid(out) + cb_log_norm_grad(out).astype(out.dtype)
        return self.log_prob(x, out), dout

    def mean(self, out):
        u = 0.5 * np.asarray(out, dtype=np.float64)
        small = np.abs(u) < 1e-2
        safe = np.where(small, 1.0, u)
        direct = 0.5 / np.tanh(safe) - 0.5 / safe  # (coth u - 1/u) / 2
        series = u / 6 - u**3 / 90
        return (0.5 + np.where(small, series, direct)).astype(out.dtype)

    def _kernel(self, K, x, out, logp, ws):
        K.continuous_bernoulli(x, out, logp, ws.get("q", out.shape, np.float64),
                               ws.get("t", out.shape, np.float64),
                               ws.get("rows", (out.shape[0],), np.float64))
        return True


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "gaussian": Gaussian,
    "gaussian-learned": GaussianLearned,
    "continuous-bernoulli": ContinuousBernoulli,
}


def make_likelihood(spec):
    """A Likelihood from a name ("bernoulli", "gaussian", ...), a config dict, or an instance.

    Parameters
    ----------
    spec : str, dict or Likelihood
        "bernoulli", "gaussian", "gaussian-learned" or "continuous-bernoulli" (underscores
        and capitals accepted); a dict as `Likelihood.config` returns it, such as
        ``{"name": "gaussian", "sigma": 0.1}``; or a Likelihood, returned as it is.

    Returns
    -------
    Likelihood

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(spec, Likelihood):
        return spec
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name")
    else:
        name, kwargs = spec, {}
    key = str(name).lower().replace("_", "-")
    if key not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[key](**kwargs)
