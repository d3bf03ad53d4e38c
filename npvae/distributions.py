"""The diagonal-Gaussian posterior q(z|x) and the standard-normal prior: sampling, KL, densities.

Posterior q(z|x) = N(mu, diag(exp(logvar))), prior p(z) = N(0, I).

* std = exp(0.5 * logvar) -- never exp(logvar), which is the variance.
* z = mu + std * eps, eps ~ N(0, I); dz/dmu = 1, dz/dlogvar = 0.5 * std * eps.
* KL(q || p) = 0.5 * sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j);
  dKL/dmu = mu, dKL/dlogvar = 0.5 * (exp(logvar) - 1).

These are the pure functions, each reading like its equation; npvae.latent builds the
latent block of the models from them (and its kernels). The likelihoods p(x|z) are in
npvae.likelihoods. Derivations: notebooks/02_gaussian_kl.ipynb, notebooks/03_reparameterization.ipynb.
"""
from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2 * np.pi))

# --------------------------------------------------------------------------- posterior


def reparameterize(mu, logvar, eps):
    """z = mu + exp(0.5 * logvar) * eps.

    mu, logvar: (B, m); eps: (L, B, m) -> z: (L, B, m), std: (B, m).
    """
    std = np.exp(0.5 * logvar)  # (B, m)
    z = mu + std * eps  # (L, B, m)
    return z, std


def reparameterize_backward(dz, eps, std):
    """Gradients of the loss through z = mu + std * eps, summed over the L samples.

    dmu     = sum_L dz                       (dz/dmu = 1)
    dlogvar = sum_L dz * eps * 0.5 * std     (dz/dlogvar = 0.5 * exp(0.5 * logvar) * eps)
    dz, eps: (L, B, m); std: (B, m) -> dmu, dlogvar: (B, m).
    """
    dmu = dz.sum(axis=0)
    dlogvar = (dz * eps).sum(axis=0) * (0.5 * std)
    return dmu, dlogvar


def gaussian_kl_terms(mu, logvar):
    """The KL's term of each latent dimension: 0.5 * (mu^2 + exp(logvar) - 1 - logvar), (B, m).

    Each term is >= 0 and is 0 exactly at mu_j = 0, logvar_j = 0.
    """
    return 0.5 * (mu * mu + np.exp(logvar) - 1 - logvar)


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example: (B, m) -> (B,), the sum over j of
    `gaussian_kl_terms`."""
    return np.sum(gaussian_kl_terms(mu, logvar), axis=-1)


def gaussian_kl_backward(mu, logvar):
    """(dKL/dmu, dKL/dlogvar) = (mu, 0.5 * (exp(logvar) - 1)), each (B, m)."""
    return mu, 0.5 * np.expm1(logvar)


def gaussian_log_density(z, mu, logvar):
    """log N(z | mu, diag(exp(logvar))) summed over the last axis (used by evaluation)."""
    return -0.5 * np.sum((z - mu) ** 2 * np.exp(-logvar) + logvar + LOG_2PI, axis=-1)


def pairwise_gaussian_log_density(z, mu, logvar):
    """log N(z_i | mu_n, diag(exp(logvar_n))) of every code i against every posterior n.

    z: (b, J); mu, logvar: (N, J) -> (b, N). The same sum as `gaussian_log_density` on
    z[:, None, :], with exp(-logvar) taken once per posterior instead of once per pair and
    the weighted sum over J done by einsum: about 5x faster on 1000 x 1000 x 20.
    """
    d = z[:, None, :] - mu  # (b, N, J)
    d *= d
    return -0.5 * (np.einsum("bnj,nj->bn", d, np.exp(-logvar)) + np.sum(logvar + LOG_2PI, axis=1))


# --------------------------------------------------------------------------- mixtures


def log_sum_exp(a, axis=0):
    """log sum exp(a) over `axis`, shifted by the maximum so nothing overflows: the log of
    a sum of densities (a mixture's, or importance weights') given by their logs."""
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))
