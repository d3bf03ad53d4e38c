"""The Gaussian latent block: z = mu + exp(logvar / 2) * eps, its KL and its backward.

The encoder's head gives h = [mu | logvar], (B, 2m). With L noise samples eps: (L, B, m),
the block draws z: (L B, m), row l B + i for sample l of example i, and after the decoder's
backward turns dloss/dz back into dloss/dh. What the loss holds of the latent layer,

    loss = ... + sum_j kl_w_j sum_i KL_ij              (analytic KL, kl_w = beta / B per dimension)
               - sum_r w_r log N(z_r | 0, I)            ("prior": a sampled log p(z) term)
               + sum_r w_r log q(z_r | x)               ("entropy": a sampled log q term)

decides its backward; with z = mu + std * eps (eps fixed) and log q(z|x) = -0.5 sum_j (eps_j^2 +
logvar_j + log 2 pi):

    dz_r     += w_r z_r                                          (prior)
    dmu_i     = sum_l dz_(l B + i) + kl_w mu_i
    dlogvar_i = 0.5 std_i sum_l dz_(l B + i) eps_li + kl_w 0.5 (exp(logvar_i) - 1)
                - 0.5 sum_l w_(l B + i)                          (entropy)

The ELBO with an analytic KL uses kl_w only (free bits zero the weight of the dimensions
below the floor); the IWAE bound uses prior and entropy with w = a / B, the normalised
importance weights; the two-layer model uses the sampled terms for both of its layers.
Each step has a NumPy twin here (`*_np`) and a kernel in npvae/fast/latent.py.
"""
from __future__ import annotations

import numpy as np

from .distributions import gaussian_kl_backward, gaussian_log_density, gaussian_kl_terms, reparameterize, reparameterize_backward
from .fast import backend
from .params import Workspace


def reparameterize_np(h, eps, z, std):
    """Twin: z <- mu + std * eps as (L B, m) rows, std <- exp(logvar / 2), from distributions."""
    L, B, m = eps.shape
    zz, sd = reparameterize(h[:, :m], h[:, m:], eps)  # (L, B, m), (B, m)
    z[...] = zz.reshape(L * B, m)
    std[...] = sd


def kl_per_dim_np(h, std, out):
    """Twin: out <- sum over the batch of each dimension's KL term, (m,) float64."""
    m = std.shape[1]
    out[...] = np.sum(gaussian_kl_terms(h[:, :m], h[:, m:]), axis=0, dtype=np.float64)


def log_prior_ratio_np(z, eps, h, out):
    """Twin: out <- log N(z | 0, I) - log q(z | x) per row = -0.5 sum(z^2 - eps^2) + 0.5 sum logvar."""
    L, B, m = eps.shape
    z3, e3 = z.reshape(L, B, m).astype(np.float64), eps.astype(np.float64)
    ratio = -0.5 * np.sum(z3 * z3 - e3 * e3, axis=-1) + 0.5 * np.sum(h[:, m:], axis=-1, dtype=np.float64)
    out[...] = ratio.reshape(L * B)


def log_q_np(eps, h, out):
    """Twin: out <- log q(z | x) per row of the sample z = mu + std * eps, from the density."""
    L, B, m = eps.shape
    mu, logvar = h[:, :m].astype(np.float64), h[:, m:].astype(np.float64)
    z = mu + np.exp(0.5 * logvar) * eps
    out[...] = gaussian_log_density(z, mu, logvar).reshape(L * B)


def latent_backward_np(dz, eps, h, std, z, w, prior, entropy, kl_w, dh):
    """Twin: dh <- dloss/d[mu | logvar], by the equations of the module docstring."""
    L, B, m = eps.shape
    w3 = w.reshape(L, B, 1)
    dz3 = dz.reshape(L, B, m) + (w3 * z.reshape(L, B, m) if prior else 0)
    dmu, dlogvar = reparameterize_backward(dz3, eps, std)  # (B, m) each
    dkl_dmu, dkl_dlogvar = gaussian_kl_backward(h[:, :m], h[:, m:])
    dh[:, :m] = dmu + kl_w * dkl_dmu
    dh[:, m:] = dlogvar + kl_w * dkl_dlogvar - (0.5 * w3.sum(axis=0) if entropy else 0)


class GaussianLatent:
    """The latent block of one Gaussian layer with L samples per example; owns its buffers."""

    def __init__(self, m):
        self.m = m
        self.ws = Workspace()

    def forward(self, h, eps):
        """h: (B, 2m) [mu | logvar], eps: (L, B, m) -> z: (L B, m) (a buffer of the block)."""
        L, B, m = eps.shape
        self.h, self.eps = h, eps
        self.z = self.ws.get("z", (L * B, m), h.dtype)
        self.std = self.ws.get("std", (B, m), h.dtype)
        K = backend.kernels()
        (reparameterize_np if K is None else K.reparameterize)(h, eps, self.z, self.std)
        return self.z

    def kl_per_dim(self):
        """Sum over the batch of each dimension's KL(q || N(0, I)) term, (m,) float64."""
        out = self.ws.get("kl", (self.m,), np.float64)
        K = backend.kernels()
        (kl_per_dim_np if K is None else K.kl_per_dim)(self.h, self.std, out)
        return out

    def log_prior_ratio(self):
        """log N(z | 0, I) - log q(z | x) for every sample, (L B,) float64."""
        out = self.ws.get("ratio", (self.z.shape[0],), np.float64)
        K = backend.kernels()
        (log_prior_ratio_np if K is None else K.log_prior_ratio)(self.z, self.eps, self.h, out)
        return out

    def log_q(self):
        """log q(z | x) for every sample, (L B,) float64."""
        out = self.ws.get("log_q", (self.z.shape[0],), np.float64)
        K = backend.kernels()
        (log_q_np if K is None else K.log_q)(self.eps, self.h, out)
        return out

    def backward(self, dz, w, kl_w, prior=False, entropy=False):
        """dloss/dh, (B, 2m), from dz: (L B, m), sample weights w: (L B,) and KL weights kl_w: (m,)."""
        dh = self.ws.get("dh", self.h.shape, self.h.dtype)
        K = backend.kernels()
        (latent_backward_np if K is None else K.latent_backward)(
            dz, self.eps, self.h, self.std, self.z, w, prior, entropy, kl_w, dh)
        return dh
