"""The variational autoencoder: encoder -> (mu, logvar) -> z -> decoder -> likelihood.

Shapes: B examples of D dimensions, latent size m, L Monte Carlo samples per example,
P decoder outputs (D, or 2D for the learned-variance Gaussian).

The loss is the negative ELBO in nats per example,

    loss = (1 / (L B)) sum_{l, b} -log p(x_b | z_lb)  +  beta * (1 / B) sum_b KL(q(z|x_b) || N(0, I)),

with every normalising constant included. Its gradient is backpropagated by hand:
likelihood -> decoder -> reparameterisation -> (+ analytic KL gradient) -> encoder.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .distributions import (gaussian_kl, gaussian_kl_backward, make_likelihood,
                            reparameterize, reparameterize_backward)
from .layers import MLP, check_activation, mlp_param_shapes
from .params import FlatBuffer


class ELBOTerms(NamedTuple):
    """Per-example ELBO and its two parts, each of shape (B,), in nats."""

    elbo: np.ndarray
    log_px_z: np.ndarray  # E_q[log p(x|z)], averaged over the L samples
    kl: np.ndarray  # KL(q(z|x) || N(0, I)), analytic


class LossParts(NamedTuple):
    """Batch averages: loss = rec + beta * kl (rec = -E_q log p(x|z))."""

    loss: float
    rec: float
    kl: float


_DTYPES = {"float32": np.float32, "float64": np.float64}


def _positive_int(value, what):
    if isinstance(value, (bool, np.bool_)) or int(value) != value or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class VAE:
    """A VAE with MLP encoder and decoder and a diagonal-Gaussian posterior.

    Parameters
    ----------
    input_dim : D, the length of one flattened example.
    latent_dim : m, the size of z.
    hidden : encoder hidden sizes; () makes the encoder a single linear map.
    activation : "relu", "leaky_relu", "tanh", "sigmoid", "softplus", "elu" or "identity".
    likelihood : "bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli",
        or a Likelihood instance such as ``npvae.Gaussian(sigma=0.1)``.
    decoder_hidden : decoder hidden sizes; default: `hidden` reversed.
    dtype : np.float32 (training) or np.float64 (gradient checks).
    seed : seeds the model's Generator, which draws the initial weights and, when no eps
        is passed, the noise of `loss_and_grads`, `elbo` and `sample`.

    `params` maps names (``encoder.0.W``, ``encoder.out.b``, ``decoder.out.W``, ...) to views
    into one flat buffer, `flat_params`; editing an array in place changes the model.
    """

    def __init__(self, input_dim, latent_dim=20, hidden=(400,), activation="relu",
                 likelihood="bernoulli", decoder_hidden=None, dtype=np.float32, seed=0):
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.hidden = tuple(_positive_int(h, "hidden size") for h in hidden)
        self.decoder_hidden = (self.hidden[::-1] if decoder_hidden is None else
                               tuple(_positive_int(h, "decoder hidden size") for h in decoder_hidden))
        self.activation = check_activation(activation)
        self.likelihood = make_likelihood(likelihood)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.seed = seed

        D, m = self.input_dim, self.latent_dim
        self.output_dim = self.likelihood.n_outputs(D)  # P
        enc_sizes = [D, *self.hidden, 2 * m]
        dec_sizes = [m, *self.decoder_hidden, self.output_dim]
        shapes = mlp_param_shapes("encoder", enc_sizes) + mlp_param_shapes("decoder", dec_sizes)
        self._theta = FlatBuffer(shapes, self.dtype)
        self._grad = FlatBuffer(shapes, self.dtype)
        self.params = self._theta.views
        self.encoder = MLP("encoder", enc_sizes, self.activation, self.params, self._grad.views)
        self.decoder = MLP("decoder", dec_sizes, self.activation, self.params, self._grad.views)

        self.rng = np.random.default_rng(seed)
        self.encoder.init(self.rng)
        self.decoder.init(self.rng)

    # ------------------------------------------------------------------ state

    @property
    def flat_params(self):
        """All parameters as one 1-D array; `params` are views into it."""
        return self._theta.flat

    @property
    def flat_grads(self):
        """The gradient buffer filled by the last loss computation, laid out like flat_params."""
        return self._grad.flat

    @property
    def n_params(self):
        return self._theta.flat.size

    def get_config(self):
        """A JSON-able dict from which `VAE.from_config` rebuilds the architecture."""
        return {
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "decoder_hidden": list(self.decoder_hidden),
            "activation": self.activation,
            "likelihood": self.likelihood.config(),
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        cfg = dict(config)
        cfg["dtype"] = _DTYPES[cfg.get("dtype", "float32")]
        return cls(**cfg)

    def __repr__(self):
        arch = "-".join(map(str, [self.input_dim, *self.hidden, f"({self.latent_dim})",
                                  *self.decoder_hidden, self.output_dim]))
        return (f"VAE({arch}, activation={self.activation!r}, likelihood={self.likelihood!r}, "
                f"dtype={self.dtype.name}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ input checks

    def check_input(self, x, name="x", check_support=True):
        """Return x as a (B, D) array of the model's dtype, or raise an error naming the problem.

        Checks: a float dtype (integers such as uint8 images must be scaled to floats first),
        two dimensions with D = input_dim, at least one row, no NaN or inf, and values inside
        the likelihood's support (e.g. [0, 1] for the Bernoulli).
        """
        return self._check_array(x, name, self.input_dim, "input_dim",
                                 self.likelihood if check_support else None)

    def _check_array(self, x, name, width, width_name, likelihood=None):
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
        return x.astype(self.dtype, copy=False)

    def _noise(self, eps, B, n_samples):
        """eps as an (L, B, m) array of the model's dtype; drawn from self.rng if None."""
        m = self.latent_dim
        if eps is None:
            L = _positive_int(n_samples, "n_samples")
            return self.rng.standard_normal((L, B, m), dtype=self.dtype)
        eps = np.asarray(eps)
        if eps.dtype.kind != "f":
            raise TypeError(f"eps has dtype {eps.dtype}; expected floating point")
        if eps.ndim != 3 or eps.shape[1:] != (B, m):
            hint = " (add the sample axis: eps[None])" if eps.shape == (B, m) else ""
            raise ValueError(f"eps has shape {eps.shape}; expected (L, B, latent_dim) = "
                             f"(L, {B}, {m}){hint}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or inf")
        return eps.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ forward / backward

    def _forward(self, x, eps):
        """Run encoder, reparameterisation and decoder, keeping what backward needs."""
        L, B, m = eps.shape
        h = self.encoder.forward(x)  # (B, 2m): [mu | logvar]
        mu, logvar = h[:, :m], h[:, m:]  # (B, m) each
        z, std = reparameterize(mu, logvar, eps)  # (L, B, m), (B, m)
        out = self.decoder.forward(z.reshape(L * B, m))  # (L B, P)
        return mu, logvar, std, out.reshape(L, B, self.output_dim)  # out: (L, B, P)

    def _loss(self, x, eps, beta):
        """LossParts of checked inputs, forward only (what finite differences evaluate)."""
        mu, logvar, _, out = self._forward(x, eps)
        rec = -float(np.mean(self.likelihood.log_prob(x, out)))
        kl = float(np.mean(gaussian_kl(mu, logvar)))
        return LossParts(rec + beta * kl, rec, kl)

    def _loss_and_grads(self, x, eps, beta):
        """Negative ELBO of checked inputs; writes dloss/dtheta into `flat_grads`.

        x: (B, D) and eps: (L, B, m), both already validated. Returns LossParts.
        """
        L, B, m = eps.shape
        mu, logvar, std, out = self._forward(x, eps)
        log_px, dlog_px = self.likelihood.log_prob_and_grad(x, out)  # (L, B), (L, B, P)
        kl = gaussian_kl(mu, logvar)  # (B,)
        rec = -float(np.mean(log_px))
        kl_mean = float(np.mean(kl))

        # loss = -(1/LB) sum log p + beta (1/B) sum KL, so dloss/dout = -dlog_px / (L B).
        dout = dlog_px * (-1.0 / (L * B))  # (L, B, P)
        dz = self.decoder.backward(dout.reshape(L * B, self.output_dim))  # (L B, m)
        dmu, dlogvar = reparameterize_backward(dz.reshape(L, B, m), eps, std)  # (B, m) each
        dkl_dmu, dkl_dlogvar = gaussian_kl_backward(mu, logvar)
        dh = np.concatenate([dmu + (beta / B) * dkl_dmu,
                             dlogvar + (beta / B) * dkl_dlogvar], axis=1)  # (B, 2m)
        self.encoder.backward(dh.astype(self.dtype, copy=False), need_dx=False)
        return LossParts(rec + beta * kl_mean, rec, kl_mean)

    def loss_and_grads(self, x, eps=None, beta=1.0, n_samples=1):
        """Negative ELBO (nats per example, batch- and sample-averaged) and its gradient.

        x: (B, D). eps: (L, B, latent_dim) standard-normal noise, or None to draw
        `n_samples` samples from the model's Generator. beta weighs the KL term.
        Returns (loss, grads) with grads a fresh dict name -> array shaped like `params`.
        """
        x = self.check_input(x)
        eps = self._noise(eps, x.shape[0], n_samples)
        beta = float(beta)
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        parts = self._loss_and_grads(x, eps, beta)
        grads = {name: view.copy() for name, view in self._grad.views.items()}
        return parts.loss, grads

    def elbo(self, x, eps=None, n_samples=1):
        """Per-example ELBO terms (ELBOTerms of (B,) arrays); no gradients."""
        x = self.check_input(x)
        eps = self._noise(eps, x.shape[0], n_samples)
        mu, logvar, _, out = self._forward(x, eps)
        log_px_z = self.likelihood.log_prob(x, out).mean(axis=0)  # (B,)
        kl = gaussian_kl(mu, logvar)  # (B,)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    # ------------------------------------------------------------------ inference

    def encode(self, x):
        """Posterior parameters (mu, logvar), each (B, latent_dim)."""
        h = self.encoder.forward(self.check_input(x, check_support=False))
        m = self.latent_dim
        return h[:, :m].copy(), h[:, m:].copy()

    def decoder_output(self, z):
        """Raw decoder output (logits, means, or [mean | logvar]) for z of shape (N, latent_dim)."""
        z = self._check_array(z, "z", self.latent_dim, "latent_dim")
        return self.decoder.forward(z)

    def decode(self, z):
        """E[x | z] under the likelihood (pixel probabilities for the Bernoulli), (N, D)."""
        return self.likelihood.mean(self.decoder_output(z))

    def sample(self, n, rng=None):
        """Decode n draws z ~ N(0, I) from the prior; returns their means E[x|z], (n, D)."""
        n = _positive_int(n, "n")
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self.dtype))

    def reconstruct(self, x):
        """Decode the posterior mean: E[x | z = mu(x)], (B, D)."""
        mu, _ = self.encode(x)
        return self.decode(mu)
