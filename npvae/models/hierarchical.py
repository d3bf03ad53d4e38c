"""A VAE with two stochastic layers, x -> z1 -> z2 and back (Burda et al., 2016, section 5).

Generative model:  p(z2) = N(0, I),  p(z1 | z2) = N(m(z2), diag(exp(s(z2)))),  p(x | z1).
Inference model:   q(z1 | x) = N(mu1(x), diag(exp(lv1(x)))),  q(z2 | z1) = N(mu2(z1), diag(exp(lv2(z1)))).

Every term is estimated from samples, z1 = mu1 + exp(lv1 / 2) * e1 and z2 = mu2 + exp(lv2 / 2) * e2,
through the log importance weight of one sample

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1),

where, with the noise fixed, -log q(z1|x) = 0.5 * sum(e1^2 + lv1 + log 2 pi) (and likewise for z2).
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

from .base import ModelBase, check_dtype
from ..checks import check_data, positive_int
from ..distributions import LOG_2PI, GaussianLearned, make_likelihood, reparameterize, reparameterize_backward
from ..layers import MLP, check_activation, mlp_param_shapes
from .vae import ELBOTerms
from ..objectives import LossParts, log_mean_exp, sample_weights


def _no_free_bits(free_bits):
    if free_bits:
        raise ValueError("free bits floor the closed-form KL of a single latent layer; "
                         "HierarchicalVAE estimates its KL terms by sampling and has no free bits")


class HierarchicalVAE(ModelBase):
    """Two stochastic layers with MLPs between them (see the module docstring).

    latent_dims = (m1, m2); hidden = (sizes between x and z1, sizes between z1 and z2); the
    decoders mirror them. The IWAE paper's MNIST model is latent_dims=(100, 50),
    hidden=((200, 200), (100, 100)), activation="tanh".
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

    # ------------------------------------------------------------------ config

    def get_config(self):
        return {"model": "hierarchical", "input_dim": self.input_dim,
                "latent_dims": list(self.latent_dims), "hidden": [list(h) for h in self.hidden],
                "activation": self.activation, "likelihood": self.likelihood.config(),
                "dtype": self.dtype.name, "seed": self.seed}

    def __repr__(self):
        (m1, m2), (h1, h2) = self.latent_dims, self.hidden
        arch = "-".join(map(str, [self.input_dim, *h1, f"({m1})", *h2, f"({m2})"]))
        return (f"HierarchicalVAE({arch}, activation={self.activation!r}, "
                f"likelihood={self.likelihood!r}, dtype={self.dtype.name}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ forward / backward

    def _forward(self, x, eps):
        """All samples' terms of log w; returns (log_w parts, cache for backward)."""
        L, B, _ = eps.shape
        m1, m2 = self.latent_dims
        e1, e2 = eps[..., :m1], eps[..., m1:].reshape(L * B, m2)
        h1 = self.encoder1.forward(x)  # (B, 2 m1)
        mu1, lv1 = h1[:, :m1], h1[:, m1:]
        z1, s1 = reparameterize(mu1, lv1, e1)  # (L, B, m1), (B, m1)
        z1 = z1.reshape(L * B, m1)
        h2 = self.encoder2.forward(z1)  # (L B, 2 m2)
        mu2, lv2 = h2[:, :m2], h2[:, m2:]
        s2 = np.exp(0.5 * lv2)  # (L B, m2)
        z2 = mu2 + s2 * e2  # (L B, m2)
        prior1 = self.decoder2.forward(z2)  # (L B, 2 m1): [m | raw logvar] of p(z1|z2)
        out = self.decoder1.forward(z1)  # (L B, P)

        log_px, dlog_px = self.likelihood.log_prob_and_grad(x, out.reshape(L, B, -1))  # (L, B)
        log_pz1, dlog_pz1 = self.prior1.log_prob_and_grad(z1, prior1)  # (L B,), (L B, 2 m1)
        log_pz2 = -0.5 * np.sum(z2 * z2 + LOG_2PI, axis=1)  # (L B,)
        log_qz1 = -0.5 * np.sum(e1 * e1 + LOG_2PI, axis=2) - 0.5 * np.sum(lv1, axis=1)  # (L, B)
        log_qz2 = -0.5 * np.sum(e2 * e2 + lv2 + LOG_2PI, axis=1)  # (L B,)
        rate = -(log_pz1.reshape(L, B) + log_pz2.reshape(L, B) - log_qz1 - log_qz2.reshape(L, B))
        cache = (e1, e2, s1, s2, z2, dlog_px, dlog_pz1)
        return log_px, rate, cache  # log w = log_px - rate, each (L, B)

    def _loss(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0):
        _no_free_bits(free_bits)
        log_px, rate, _ = self._forward(x, eps)
        return self._parts(log_px, rate, beta, objective)

    @staticmethod
    def _parts(log_px, rate, beta, objective):
        rec, kl = -float(np.mean(log_px)), float(np.mean(rate))
        if objective == "iwae":
            return LossParts(-float(np.mean(log_mean_exp(log_px - rate))), rec, kl)
        return LossParts(rec + beta * kl, rec, kl)

    def _loss_and_grads(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0):
        """Loss of checked inputs; writes dloss/dtheta into flat_grads; returns LossParts."""
        _no_free_bits(free_bits)
        L, B, _ = eps.shape
        m1, m2 = self.latent_dims
        log_px, rate, (e1, e2, s1, s2, z2, dlog_px, dlog_pz1) = self._forward(x, eps)
        g = (sample_weights(log_px - rate, objective) / B).reshape(L * B, 1)  # -dloss/dlog w
        gr = beta * g  # the rate terms carry beta

        # log p(x|z1) through decoder1
        dz1 = self.decoder1.backward(-g * dlog_px.reshape(L * B, -1))  # (L B, m1)
        # log p(z1|z2): d/dz1 = -d/dmean; the rest flows into decoder2, then to z2
        dz1 += gr * dlog_pz1[:, :m1]
        dz2 = self.decoder2.backward(-gr * dlog_pz1)  # (L B, m2)
        dz2 += gr * z2  # log p(z2) = -0.5 |z2|^2 + const
        # z2 = mu2 + s2 e2, and -log q(z2|z1) = 0.5 * sum(lv2) + const
        dmu2, dlv2 = dz2, dz2 * e2 * (0.5 * s2) - 0.5 * gr
        dz1 += self.encoder2.backward(np.concatenate([dmu2, dlv2], axis=1))
        # z1 = mu1 + s1 e1, and -log q(z1|x) = 0.5 * sum(lv1) + const
        dmu1, dlv1 = reparameterize_backward(dz1.reshape(L, B, m1), e1, s1)  # (B, m1)
        dlv1 -= 0.5 * gr.reshape(L, B).sum(axis=0)[:, None]
        self.encoder1.backward(np.concatenate([dmu1, dlv1], axis=1), need_dx=False)
        return self._parts(log_px, rate, beta, objective)

    def log_weights(self, x, eps):
        """log w for each sample, shape (L, B), for checked x and noise (used by evaluation)."""
        log_px, rate, _ = self._forward(x, eps)
        return log_px - rate

    def elbo(self, x, eps=None, n_samples=1):
        """Per-example ELBO terms; `kl` is the Monte Carlo rate E_q[log q(z1, z2|x) - log p(z1, z2)]."""
        x = self.check_input(x)
        log_px, rate, _ = self._forward(x, self._noise(eps, x.shape[0], n_samples))
        log_px_z, kl = log_px.mean(axis=0), rate.mean(axis=0)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    # ------------------------------------------------------------------ inference

    def encode(self, x):
        """Parameters (mu1, logvar1) of q(z1 | x), each (B, m1)."""
        h = self.encoder1.forward(self.check_input(x, check_support=False))
        m1 = self.latent_dims[0]
        return h[:, :m1].copy(), h[:, m1:].copy()

    def decode(self, z1):
        """E[x | z1], (N, D)."""
        z1 = check_data(z1, "z1", self.latent_dims[0], "m1", self.dtype)
        return self.likelihood.mean(self.decoder1.forward(z1))

    def sample(self, n, rng=None):
        """z2 ~ N(0, I), z1 ~ p(z1 | z2), then the mean E[x | z1]; (n, D)."""
        rng = self.rng if rng is None else rng
        n = positive_int(n, "n")
        m1, m2 = self.latent_dims
        z2 = rng.standard_normal((n, m2)).astype(self.dtype)
        prior1 = self.decoder2.forward(z2)
        std = np.sqrt(self.prior1.variance(prior1))
        z1 = self.prior1.mean(prior1) + std * rng.standard_normal((n, m1)).astype(self.dtype)
        return self.decode(z1)

    def reconstruct(self, x):
        """E[x | z1 = mu1(x)], (B, D)."""
        return self.decode(self.encode(x)[0])
