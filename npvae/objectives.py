"""Training objectives over L samples per example: the ELBO, the IWAE bound and beta-TCVAE.

For one example with log importance weights log w_l = log p(x, z_l) - log q(z_l | x),
  ELBO  (L-sample average):  (1/L) sum_l log w_l          (here with the KL in closed form),
  IWAE  (Burda et al., 2016): log (1/L) sum_l w_l          (tighter; equal to the ELBO at L = 1).
d IWAE / d theta = sum_l a_l d log w_l / d theta with a_l = w_l / sum_l' w_l', the normalised
importance weights, so one backward pass serves both: the ELBO uses a_l = 1/L.

The "tcvae" objective (Chen et al., 2018) splits the KL into index-code mutual information,
total correlation and dimension-wise KL, weighed alpha, beta and gamma, with q(z) estimated
over the minibatch; its math and gradients are in npvae.tcvae.

`gaussian_latent_step` turns a batch's log p(x|z) rows into what the models' training step
needs: the weight of each row in the loss, the latent block's weights (see npvae.latent)
and the LossParts. The functions above it are the pure versions the tests, the notebooks
and the evaluation use; `iwae_weights_np` is the twin of the kernel `softmax_samples`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .distributions import gaussian_kl, gaussian_kl_terms, log_sum_exp
from .fast import backend
from .tcvae import TCWeights, minibatch_terms, stratified_log_weights, tc_loss

OBJECTIVES = ("elbo", "iwae", "tcvae")


class LossParts(NamedTuple):
    """Batch averages: loss = rec + beta * kl for the ELBO (rec = -E_q log p(x|z)); for IWAE
    the loss is the bound and rec, kl are still the ELBO's parts."""

    loss: float
    rec: float
    kl: float


def sample_weights(log_w, objective):
    """a_lb, shape (L, B): 1/L for the ELBO, softmax over l of log w for IWAE."""
    if objective == "elbo":
        return np.full_like(log_w, 1.0 / log_w.shape[0])
    shifted = np.exp(log_w - log_w.max(axis=0))
    return shifted / shifted.sum(axis=0)


def log_mean_exp(log_w):
    """log (1/L) sum_l exp(log_w[l]) over axis 0."""
    return log_sum_exp(log_w) - np.log(log_w.shape[0])


def gaussian_log_weight_terms(eps, mu, logvar):
    """log p(z) - log q(z|x) for z = mu + exp(logvar / 2) * eps, per sample: (L, B).

    log p(z) = -0.5 * sum(z^2 + log 2 pi);  log q(z|x) = -0.5 * sum(eps^2 + logvar + log 2 pi),
    so the log 2 pi terms cancel. Computed in float64.
    """
    eps = eps.astype(np.float64)
    z = mu + np.exp(0.5 * logvar) * eps  # (L, B, m)
    return -0.5 * np.sum(z * z - eps * eps, axis=-1) + 0.5 * np.sum(logvar, axis=-1, dtype=np.float64)


def kl_objective(mu, logvar, free_bits=0.0):
    """The KL part of the ELBO objective with an optional per-dimension floor ("free bits").

    KL_j = mean_b 0.5 * (mu_bj^2 + exp(logvar_bj) - 1 - logvar_bj) per latent dimension j;
    the objective's KL term is sum_j max(KL_j, free_bits) (Kingma et al., 2016): a dimension
    whose batch-average KL is below the floor costs the floor and gets no KL gradient, so the
    encoder is not pushed to switch it off. free_bits = 0 gives the plain batch-mean KL.
    Returns (value, active) with active a (m,) mask of dimensions above the floor.
    """
    per_dim = np.mean(gaussian_kl_terms(mu, logvar), axis=0, dtype=np.float64)
    active = per_dim > free_bits if free_bits > 0 else np.ones(per_dim.shape, dtype=bool)
    return float(np.sum(np.maximum(per_dim, free_bits))), active


def gaussian_latent_loss(log_px, eps, mu, logvar, beta, objective, free_bits=0.0,
                         tc=TCWeights()):
    """LossParts of a model with one Gaussian latent layer and prior N(0, I).

    log_px: (L, B) log p(x|z) per sample. rec and the analytic kl are reported whatever the
    objective; the loss is rec + beta * (kl, floored per dimension by free bits) for the
    ELBO, -mean_b log mean_l w_lb for IWAE, and for tcvae rec + the mean over the codes of
    alpha MI + beta TC + gamma DWKL (npvae.tcvae; `tc` holds alpha, gamma and N).
    """
    rec, kl = -float(np.mean(log_px)), float(np.mean(gaussian_kl(mu, logvar)))
    if objective == "iwae":
        log_w = log_px + gaussian_log_weight_terms(eps, mu, logvar)  # (L, B)
        return LossParts(-float(np.mean(log_mean_exp(log_w))), rec, kl)
    if objective == "tcvae":
        L, B, m = eps.shape
        z = (mu + np.exp(0.5 * logvar) * eps).reshape(L * B, m)
        log_w = stratified_log_weights(B, tc.dataset_size)
        return LossParts(rec + tc_loss(z, mu, logvar, log_w, tc.alpha, beta, tc.gamma), rec, kl)
    kl_term = kl_objective(mu, logvar, free_bits)[0] if free_bits else kl
    return LossParts(rec + beta * kl_term, rec, kl)


def iwae_weights_np(log_w, a):
    """Twin of the kernel: a <- the normalised importance weights (softmax over axis 0 of
    log_w, (L, B)); returns sum_b log mean_l w_lb."""
    a[...] = sample_weights(log_w, "iwae")
    return float(np.sum(log_mean_exp(log_w)))


def iwae_weights(log_w, a):
    """a <- softmax over the L samples of log_w, (L, B); returns sum_b log mean_l w_lb."""
    K = backend.kernels()
    return iwae_weights_np(log_w, a) if K is None else K.softmax_samples(log_w, a)


class LatentStep(NamedTuple):
    """What a training step needs from the objective (see gaussian_latent_step)."""

    parts: LossParts
    w_rec: np.ndarray  # (L B,) float64: loss = sum_r w_rec_r log p(x|z_r) + ..., so dloss/dout = w_rec * dlog p
    w_latent: np.ndarray  # (L B,): weights of the sampled latent terms
    kl_w: np.ndarray  # (m,): weights of the analytic KL per dimension
    prior: bool  # the loss holds -w_latent log p(z) (IWAE)
    entropy: bool  # the loss holds +w_latent log q(z|x) (IWAE, tcvae)
    dz: np.ndarray | None = None  # (L B, m): further dloss/dz (tcvae's pairwise and prior terms)
    dh: np.ndarray | None = None  # (B, 2m): further dloss/d[mu | logvar] (tcvae's pairwise terms)


def gaussian_latent_step(log_px, latent, beta, objective, free_bits, ws, tc=TCWeights()):
    """The objective of a model with one Gaussian latent block (npvae.latent.GaussianLatent).

    log_px: (L B,) log p(x|z) per sample, from the likelihood block. ELBO: each row weighs
    -1/(L B), and the KL enters in closed form with weight beta / B on the dimensions above
    the free-bits floor. IWAE: log w = log p(x|z) + log p(z) - log q(z|x) per row, a = the
    normalised importance weights, and rows weigh -a / B in the reconstruction and a / B in
    the sampled latent terms. tcvae: rows weigh -1/(L B), the own log q(z|x) is a sampled term
    of weight alpha / (L B), and npvae.tcvae gives the gradients of the minibatch estimates
    of log q(z) and log q(z_j) and of log p(z) as `dz`, `dh`. `ws` (a Workspace) holds the
    weight buffers.
    """
    L, B = latent.eps.shape[:2]
    kl_sum = latent.kl_per_dim()  # (m,) float64, summed over the batch
    rec, kl = -float(np.sum(log_px)) / (L * B), float(np.sum(kl_sum)) / B
    # float64 weights: a ufunc that casts between dtypes allocates buffers, these do not
    w_rec, w_latent = (ws.get(name, log_px.shape, np.float64) for name in ("w_rec", "w_latent"))
    kl_w = ws.get("kl_w", kl_sum.shape, np.float64)
    if objective == "iwae":
        log_w = ws.get("log_w", log_px.shape, np.float64)
        log_w[...] = log_px
        log_w += latent.log_prior_ratio()
        a = ws.get("a", (L, B), np.float64)
        bound = iwae_weights(log_w.reshape(L, B), a) / B
        np.multiply(a.reshape(-1), 1.0 / B, out=w_latent)
        np.negative(w_latent, out=w_rec)
        kl_w.fill(0)
        return LatentStep(LossParts(-bound, rec, kl), w_rec, w_latent, kl_w, True, True)
    w_rec.fill(-1.0 / (L * B))
    if objective == "tcvae":
        return _tcvae_step(latent, beta, tc, rec, kl, w_rec, w_latent, kl_w, ws)
    kl_w.fill(beta / B)
    kl_term = kl
    if free_bits:
        kl_term = float(np.sum(np.maximum(kl_sum / B, free_bits)))
        kl_w[kl_sum / B <= free_bits] = 0  # below the floor: no KL gradient
    return LatentStep(LossParts(rec + beta * kl_term, rec, kl), w_rec, w_latent, kl_w, False, False)


def _tcvae_step(latent, beta, tc, rec, kl, w_rec, w_latent, kl_w, ws):
    """The tcvae branch of gaussian_latent_step."""
    (R, m), B = latent.z.shape, latent.h.shape[0]
    log_w = ws.get("tc_log_w", (B, B), np.float64)
    log_w[...] = stratified_log_weights(B, tc.dataset_size)
    dz = ws.get("tc_dz", (R, m), latent.z.dtype)
    dh = ws.get("tc_dh", (B, 2 * m), latent.h.dtype)
    mi, total_corr, dwkl = minibatch_terms(latent, log_w, tc.alpha, beta, tc.gamma, dz, dh, ws)
    w_latent.fill(tc.alpha / R)
    kl_w.fill(0)
    loss = rec + (tc.alpha * mi + beta * total_corr + tc.gamma * dwkl) / R
    return LatentStep(LossParts(loss, rec, kl), w_rec, w_latent, kl_w, False, True, dz, dh)
