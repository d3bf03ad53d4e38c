"""A VAE with two stochastic layers, x -> z1 -> z2 and back (Burda et al., 2016, section 5).

Generative model:  p(z2) = N(0, I),  p(z1 | z2) = N(m(z2), diag(exp(s(z2)))),  p(x | z1).
Inference model:   q(z1 | x) = N(mu1(x), diag(exp(lv1(x)))),  q(z2 | z1) = N(mu2(z1), diag(exp(lv2(z1)))).

Every term is estimated from samples, z1 = mu1 + exp(lv1 / 2) * e1 and z2 = mu2 + exp(lv2 / 2) * e2,
through the log importance weight of one sample

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1),

where, with the noise fixed, -log q(z1|x) = 0.5 * sum(e1^2 + lv1 + log 2 pi) (and likewise for z2).
Each term is a block: the two latent blocks (npvae.latent) give z1, z2, log q(z1|x) and
log p(z2) - log q(z2|z1); the learned-variance Gaussian block gives log p(z1|z2) and its
gradient; the likelihood block log p(x|z1). The step is written once for both backends.
The ELBO objective averages log w over the L samples; the IWAE objective (`objective="iwae"`)
is log (1/L) sum_l w_l, whose gradient weights each sample's d log w by its normalised
importance weight. Both share one backward pass: dloss/dlog w_lb = -a_lb / B, with
a_lb = 1/L (ELBO) or softmax_l(log w_lb) (IWAE).

Parameter names: encoder1.* (x -> [mu1 | lv1]), encoder2.* (z1 -> [mu2 | lv2]),
decoder2.* (z2 -> [m | raw log-variance] of p(z1|z2), clamped like GaussianLearned), decoder1.* (z1 -> x).
The noise is one array eps of shape (L, B, m1 + m2): e1 = eps[..., :m1], e2 = eps[..., m1:].
"""
from __future__ import annotations

import numpy as np

from ..checks import check_data, positive_int
from ..latent import GaussianLatent
from ..layers import MLP, add_scaled, check_activation, mlp_param_shapes, scale_rows
from ..likelihoods import GaussianLearned, make_likelihood
from ..objectives import LossParts, iwae_weights
from ..params import Workspace
from .base import ModelBase, check_dtype
from .vae import ELBOTerms


def _no_free_bits(free_bits, objective):
    if free_bits:
        raise ValueError("free bits floor the closed-form KL of a single latent layer; "
                         "HierarchicalVAE estimates its KL terms by sampling and has no free bits")
    if objective == "tcvae":
        raise ValueError("the tcvae objective splits the KL of one Gaussian latent layer against "
                         "N(0, I); HierarchicalVAE's first layer has a learned prior p(z1|z2): "
                         "use objective 'elbo' or 'iwae'")


class HierarchicalVAE(ModelBase):
    """Two stochastic layers with MLPs between them (see the module docstring).

    x -> z1 -> z2 for inference, z2 -> z1 -> x for generation; every KL term is estimated
    by sampling. The IWAE paper's MNIST model is latent_dims=(100, 50),
    hidden=((200, 200), (100, 100)), activation="tanh".

    Parameters
    ----------
    input_dim : int
        D, the length of one flattened example.
    latent_dims : (int, int)
        (m1, m2), the sizes of z1 and z2.
    hidden : (tuple of int, tuple of int)
        (sizes between x and z1, sizes between z1 and z2); the decoders mirror them.
    activation : str
        As for `VAE`.
    likelihood : str or Likelihood
        p(x | z1), as for `VAE`.
    dtype : numpy dtype
        np.float32 (training) or np.float64 (gradient checks).
    seed : int
        Seeds the model's Generator (initial weights, and the noise when none is passed).

    Attributes
    ----------
    latent_dim : int
        m1: what `encode` returns and `decode` takes.
    noise_dim : int
        m1 + m2: the noise eps has shape (L, B, m1 + m2), e1 = eps[..., :m1] for z1 and
        e2 = eps[..., m1:] for z2.
    """

    def __init__(self, input_dim, latent_dims=(100, 50), hidden=((200, 200), (100, 100)),
                 activation="tanh", likelihood="bernoulli", dtype=np.float32, seed=0):
        self.input_dim = positive_int(input_dim, "input_dim")
        m1, m2 = (positive_int(m, "latent size") for m in latent_dims)
        self.latent_dims = (m1, m2)
        self.latent_dim = m1  # what encode returns and decode takes
        self.noise_dim = m1 + m2
        self.hidden = tuple(tuple(positive_int(h, "hidden size") for h in part) for part in hidden)
        if len(self.hidden) != 2:
            raise ValueError("hidden must hold two lists of sizes: x -> z1 and z1 -> z2")
        self.activation = check_activation(activation)
        self.likelihood = make_likelihood(likelihood)
        self.prior1 = GaussianLearned()  # p(z1 | z2), from decoder2's [mean | raw logvar]
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.output_dim = self.likelihood.n_outputs(self.input_dim)
        h1, h2 = self.hidden
        sizes = {"encoder1": [self.input_dim, *h1, 2 * m1], "encoder2": [m1, *h2, 2 * m2],
                 "decoder2": [m2, *h2[::-1], 2 * m1], "decoder1": [m1, *h1[::-1], self.output_dim]}
        shapes = [s for name, sz in sizes.items() for s in mlp_param_shapes(name, sz)]
        self._init_buffers(shapes)
        self.rng = np.random.default_rng(seed)
        for name, sz in sizes.items():
            net = MLP(name, sz, self.activation, self.params, self._grad.views)
            net.init(self.rng)
            setattr(self, name, net)
        self.latent1, self.latent2 = GaussianLatent(m1), GaussianLatent(m2)
        self._zero_kl1, self._zero_kl2 = np.zeros(m1), np.zeros(m2)  # no analytic KL here
        self._ws = Workspace()

    # ------------------------------------------------------------------ config

    def get_config(self):
        """A JSON-able dict from which `load` rebuilds the architecture (the constructor's arguments)."""
        return {"model": "hierarchical", "input_dim": self.input_dim,
                "latent_dims": list(self.latent_dims), "hidden": [list(h) for h in self.hidden],
                "activation": self.activation, "likelihood": self.likelihood.config(),
                "dtype": self.dtype.name, "seed": self.seed}

    def __repr__(self):
        (m1, m2), (h1, h2) = self.latent_dims, self.hidden
        arch = "-".join(map(str, [self.input_dim, *h1, f"({m1})", *h2, f"({m2})"]))
        return (f"HierarchicalVAE({arch}, activation={self.activation!r}, "
                f"likelihood={self.likelihood!r}, dtype={self.dtype.name}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ the training step

    def _log_w(self, x, eps):
        """Run every block forward; returns (log w, log p(x|z1)), each (L B,) float64 buffers.

        Rows are l B + i. Under the "numba" backend every block runs its kernel; the
        likelihoods leave their gradients in the decoders' output buffers for the backward.
        """
        L, B, _ = eps.shape
        m1, m2 = self.latent_dims
        z1 = self.latent1.forward(self.encoder1.forward(x), eps[..., :m1])  # (L B, m1)
        e2 = eps[..., m1:].reshape(1, L * B, m2)  # z2 has one sample per z1 row
        z2 = self.latent2.forward(self.encoder2.forward(z1), e2)  # (L B, m2)
        log_px, _ = self.likelihood.log_prob_and_grad_rows(x, self.decoder1.forward(z1))
        log_pz1, _ = self.prior1.log_prob_and_grad_rows(z1, self.decoder2.forward(z2))
        log_w, rows = (self._ws.get(k, (L * B,), np.float64) for k in ("log_w", "log_px"))
        rows[...] = log_px
        log_w[...] = log_pz1  # log p(z1|z2)
        log_w += rows  # + log p(x|z1)
        log_w -= self.latent1.log_q()  # - log q(z1|x)
        log_w += self.latent2.log_prior_ratio()  # + log p(z2) - log q(z2|z1)
        return log_w, rows

    def _parts(self, log_w, log_px, L, beta, objective):
        """LossParts from the rows: rec = -mean log p(x|z1), kl = the mean sampled rate."""
        B = log_w.shape[0] // L
        rec = -float(np.sum(log_px)) / (L * B)
        kl = float(np.sum(log_px) - np.sum(log_w)) / (L * B)  # rate = log p(x|z1) - log w
        if objective == "iwae":
            bound = iwae_weights(log_w.reshape(L, B), self._ws.get("a", (L, B), np.float64)) / B
            return LossParts(-bound, rec, kl)
        return LossParts(rec + beta * kl, rec, kl)

    def _loss(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0, tc=None):
        _no_free_bits(free_bits, objective)
        log_w, log_px = self._log_w(x, eps)
        return self._parts(log_w, log_px, eps.shape[0], beta, objective)

    def _loss_and_grads(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0, tc=None):
        """Loss of checked inputs; writes dloss/dtheta into flat_grads; returns LossParts.

        With g_r = a_r / B the weight of row r's log w in the loss (a = 1/L for the ELBO, the
        normalised importance weights for IWAE) and gr = beta g on the rate terms:
        loss = -sum_r g_r log p(x|z1_r) - sum_r gr_r (log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)).
        """
        _no_free_bits(free_bits, objective)
        L = eps.shape[0]
        log_w, log_px = self._log_w(x, eps)
        parts = self._parts(log_w, log_px, L, beta, objective)  # IWAE: leaves a in the workspace
        g_rec, g_rate, w_rate = self._row_weights(log_w, L, beta, objective)  # -g, -beta g, beta g
        out_grad = self.decoder1.layers[-1].y  # d log p(x|z1) / dout, left by the likelihood
        scale_rows(out_grad, g_rec)
        dz1 = self.decoder1.backward(out_grad)  # (L B, m1)
        prior_grad = self.decoder2.layers[-1].y  # d log p(z1|z2) / d[mean | raw logvar]
        scale_rows(prior_grad, g_rate)
        add_scaled(dz1, prior_grad[:, :self.latent_dims[0]], -1)  # d/dz1 of log p(z1|z2) = -d/dmean
        dz2 = self.decoder2.backward(prior_grad)  # (L B, m2)
        dh2 = self.latent2.backward(dz2, w_rate, self._zero_kl2, prior=True, entropy=True)
        dz1 += self.encoder2.backward(dh2)
        dh1 = self.latent1.backward(dz1, w_rate, self._zero_kl1, prior=False, entropy=True)
        self.encoder1.backward(dh1, need_dx=False)
        return parts

    def _row_weights(self, log_w, L, beta, objective):
        """(-g, -beta g, beta g), (L B,) workspace buffers, with g_r = a_r / B."""
        B = log_w.shape[0] // L
        g_rec, g_rate, w_rate = (self._ws.get(k, log_w.shape, np.float64) for k in ("g", "ng", "gr"))
        if objective == "iwae":
            np.multiply(self._ws.get("a", (L, B), np.float64).reshape(-1), -1.0 / B, out=g_rec)
        else:
            g_rec.fill(-1.0 / (L * B))
        np.multiply(g_rec, beta, out=g_rate)
        np.negative(g_rate, out=w_rate)
        return g_rec, g_rate, w_rate

    def log_weights(self, x, eps):
        """log w = log p(x, z1, z2) - log q(z1, z2 | x) for each sample (used by evaluation).

        Parameters
        ----------
        x : array, shape (B, D)
            Examples already checked by `check_input`.
        eps : array, shape (L, B, m1 + m2)
            Standard-normal noise of the model's dtype.

        Returns
        -------
        array, shape (L, B)
            The log importance weights, float64.
        """
        return self._log_w(x, eps)[0].reshape(eps.shape[0], -1).copy()

    def elbo(self, x, eps=None, n_samples=1):
        """Per-example ELBO terms, estimated from L samples; no gradients.

        Parameters
        ----------
        x : array, shape (B, D)
        eps : array, shape (L, B, m1 + m2), optional
            Standard-normal noise; drawn from the model's Generator when None.
        n_samples : int
            L, when `eps` is drawn.

        Returns
        -------
        ELBOTerms
            Each of shape (B,), in nats; ``kl`` is the Monte Carlo rate
            E_q[log q(z1, z2|x) - log p(z1, z2)].
        """
        x = self.check_input(x)
        eps = self._noise(eps, x.shape[0], n_samples)
        log_w, log_px = (a.reshape(eps.shape[0], -1) for a in self._log_w(x, eps))
        log_px_z, kl = log_px.mean(axis=0), (log_px - log_w).mean(axis=0)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    # ------------------------------------------------------------------ inference

    def encode(self, x):
        """Parameters of q(z1 | x) = N(mu1, diag(exp(logvar1))).

        Parameters
        ----------
        x : array, shape (B, D)

        Returns
        -------
        mu1 : array, shape (B, m1)
        logvar1 : array, shape (B, m1)
        """
        h = self.encoder1.forward(self.check_input(x, check_support=False))
        m1 = self.latent_dims[0]
        return h[:, :m1].copy(), h[:, m1:].copy()

    def decode(self, z1):
        """E[x | z1] under the likelihood.

        Parameters
        ----------
        z1 : array, shape (N, m1)

        Returns
        -------
        array, shape (N, D)
        """
        z1 = check_data(z1, "z1", self.latent_dims[0], "m1", self.dtype)
        return self.likelihood.mean(self.decoder1.forward(z1))

    def sample(self, n, rng=None):
        """Ancestral samples: z2 ~ N(0, I), z1 ~ p(z1 | z2), then the mean E[x | z1].

        Parameters
        ----------
        n : int
            The number of samples.
        rng : numpy.random.Generator, optional
            Draws z2 and z1; default the model's Generator.

        Returns
        -------
        array, shape (n, D)
        """
        rng = self.rng if rng is None else rng
        n = self._sample_count(n)
        m1, m2 = self.latent_dims
        z2 = rng.standard_normal((n, m2)).astype(self.dtype)
        prior1 = self.decoder2.forward(z2)
        std = np.sqrt(self.prior1.variance(prior1))
        z1 = self.prior1.mean(prior1) + std * rng.standard_normal((n, m1)).astype(self.dtype)
        return self.decode(z1)

    def reconstruct(self, x):
        """Decode the posterior mean of the lower layer: E[x | z1 = mu1(x)].

        Parameters
        ----------
        x : array, shape (B, D)

        Returns
        -------
        array, shape (B, D)
        """
        return self.decode(self.encode(x)[0])
