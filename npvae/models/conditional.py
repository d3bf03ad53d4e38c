"""A conditional VAE: q(z | x, y) and p(x | z, y) with a one-hot label y (Sohn et al., 2015).

The encoder reads [x | y] and the decoder [z | y]; the prior stays N(0, I), so the ELBO is
the VAE's with y appended to both networks' inputs:

    ELBO(x, y) = E_q(z|x,y)[log p(x | z, y)] - KL(q(z | x, y) || N(0, I)).

To let the training loop, the evaluation and the save files treat it like any model, the
label rides along with the data: the model's input is the joined array [x | onehot(y)] of
width D + C (`ConditionalVAE.join(x, y)` builds it), and only the first D columns go through
the likelihood. Gradients flow into [z | y] at the decoder's input; the y columns are data,
so their share is dropped.
"""
from __future__ import annotations

import numpy as np

from .base import ModelBase, check_dtype
from ..checks import check_data, positive_int
from ..distributions import gaussian_kl, make_likelihood, reparameterize
from ..layers import MLP, check_activation, mlp_param_shapes
from .vae import ELBOTerms
from ..objectives import (gaussian_latent_loss, gaussian_log_weight_terms, latent_backward,
                         sample_weights)


def one_hot(y, n_classes, dtype=np.float32):
    """(N,) integer labels in [0, n_classes) -> (N, n_classes) one-hot rows."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), found values in [{y.min()}, {y.max()}]")
    out = np.zeros((y.size, n_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out


class ConditionalVAE(ModelBase):
    """A VAE whose encoder and decoder both see a one-hot class label.

    input_dim is D (the data); n_classes is C; inputs to every method that takes x are the
    joined (B, D + C) arrays from `join`. Parameter names follow VAE: encoder.* (input D + C),
    decoder.* (input latent_dim + C).
    """

    def __init__(self, input_dim, n_classes, latent_dim=20, hidden=(400,), activation="relu",
                 likelihood="bernoulli", decoder_hidden=None, dtype=np.float32, seed=0):
        self.input_dim = positive_int(input_dim, "input_dim")
        self.n_classes = positive_int(n_classes, "n_classes")
        self.latent_dim = self.noise_dim = positive_int(latent_dim, "latent_dim")
        self.hidden = tuple(positive_int(h, "hidden size") for h in hidden)
        self.decoder_hidden = (self.hidden[::-1] if decoder_hidden is None
                               else tuple(positive_int(h, "hidden size") for h in decoder_hidden))
        self.activation = check_activation(activation)
        self.likelihood = make_likelihood(likelihood)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        D, C, m = self.input_dim, self.n_classes, self.latent_dim
        self.output_dim = self.likelihood.n_outputs(D)
        enc, dec = [D + C, *self.hidden, 2 * m], [m + C, *self.decoder_hidden, self.output_dim]
        self._init_buffers(mlp_param_shapes("encoder", enc) + mlp_param_shapes("decoder", dec))
        self.encoder = MLP("encoder", enc, self.activation, self.params, self._grad.views)
        self.decoder = MLP("decoder", dec, self.activation, self.params, self._grad.views)
        self.rng = np.random.default_rng(seed)
        self.encoder.init(self.rng)
        self.decoder.init(self.rng)

    @property
    def input_width(self):
        return self.input_dim + self.n_classes

    def get_config(self):
        return {"model": "conditional", "input_dim": self.input_dim, "n_classes": self.n_classes,
                "latent_dim": self.latent_dim, "hidden": list(self.hidden),
                "decoder_hidden": list(self.decoder_hidden), "activation": self.activation,
                "likelihood": self.likelihood.config(), "dtype": self.dtype.name, "seed": self.seed}

    def __repr__(self):
        return (f"ConditionalVAE({self.input_dim}+{self.n_classes} classes, latent {self.latent_dim}, "
                f"hidden {list(self.hidden)}, likelihood={self.likelihood!r}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ data

    def join(self, x, y):
        """[x | onehot(y)]: the input every method takes. y: (N,) int labels or (N, C) one-hot."""
        x = np.asarray(x)
        y = np.asarray(y)
        y = y if y.ndim == 2 else one_hot(y, self.n_classes)
        if x.ndim != 2 or y.shape != (x.shape[0], self.n_classes):
            raise ValueError(f"x {x.shape} and labels {y.shape} do not pair up as (N, D), "
                             f"(N, {self.n_classes})")
        return np.concatenate([x, y], axis=1).astype(self.dtype)

    def check_input(self, x, name="x", check_support=True):
        """Check the joined array: x columns as for a VAE, label columns one-hot."""
        xa = check_data(x, name, self.input_width, "input_dim + n_classes", self.dtype)
        D = self.input_dim
        labels = xa[:, D:]
        if not (np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1)):
            raise ValueError(f"the last {self.n_classes} columns of {name} must be one-hot labels "
                             f"(build the input with ConditionalVAE.join(x, y))")
        if check_support:
            self.likelihood.check_data(xa[:, :D])
        return xa

    # ------------------------------------------------------------------ forward / backward

    def _forward(self, xa, eps):
        L, B, m = eps.shape
        y = xa[:, self.input_dim:]  # (B, C)
        h = self.encoder.forward(xa)  # (B, 2m)
        mu, logvar = h[:, :m], h[:, m:]
        z, std = reparameterize(mu, logvar, eps)  # (L, B, m), (B, m)
        zy = np.concatenate([z, np.broadcast_to(y, (L, B, self.n_classes))], axis=2)  # (L, B, m + C)
        out = self.decoder.forward(zy.reshape(L * B, -1)).reshape(L, B, -1)  # (L, B, P)
        return mu, logvar, std, out

    def log_weights(self, xa, eps):
        """log p(x|z,y) + log p(z) - log q(z|x,y) per sample, (L, B), float64."""
        mu, logvar, _, out = self._forward(xa, eps)
        log_px = self.likelihood.log_prob(xa[:, :self.input_dim], out).astype(np.float64)
        return log_px + gaussian_log_weight_terms(eps, mu, logvar)

    def _loss(self, xa, eps, beta=1.0, objective="elbo", free_bits=0.0):
        mu, logvar, _, out = self._forward(xa, eps)
        log_px = self.likelihood.log_prob(xa[:, :self.input_dim], out)
        return gaussian_latent_loss(log_px, eps, mu, logvar, beta, objective, free_bits)

    def _loss_and_grads(self, xa, eps, beta=1.0, objective="elbo", free_bits=0.0):
        """Objective of checked inputs; writes dloss/dtheta into flat_grads; returns LossParts."""
        L, B, m = eps.shape
        mu, logvar, std, out = self._forward(xa, eps)
        log_px, dlog_px = self.likelihood.log_prob_and_grad(xa[:, :self.input_dim], out)  # (L, B)
        log_w = log_px + gaussian_log_weight_terms(eps, mu, logvar) if objective == "iwae" else log_px
        a = sample_weights(log_w, objective).astype(self.dtype)  # (L, B)
        dout = (-a / B)[..., None] * dlog_px  # (L, B, P)
        dzy = self.decoder.backward(dout.reshape(L * B, -1))  # (L B, m + C)
        dz = dzy[:, :m].reshape(L, B, m)  # the label columns are data: no gradient needed
        dmu, dlogvar = latent_backward(dz, eps, mu, logvar, std, a, beta, objective, free_bits)
        self.encoder.backward(np.concatenate([dmu, dlogvar], axis=1).astype(self.dtype), need_dx=False)
        return gaussian_latent_loss(log_px, eps, mu, logvar, beta, objective, free_bits)

    def elbo(self, xa, eps=None, n_samples=1):
        xa = self.check_input(xa)
        mu, logvar, _, out = self._forward(xa, self._noise(eps, xa.shape[0], n_samples))
        log_px_z = self.likelihood.log_prob(xa[:, :self.input_dim], out).mean(axis=0)
        kl = gaussian_kl(mu, logvar)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    # ------------------------------------------------------------------ inference

    def encode(self, xa):
        h = self.encoder.forward(self.check_input(xa, check_support=False))
        m = self.latent_dim
        return h[:, :m].copy(), h[:, m:].copy()

    def decode(self, z, y):
        """E[x | z, y] for z (N, latent_dim) and labels y ((N,) ints or (N, C) one-hot)."""
        z = check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)
        zy = self.join(z, y) if np.ndim(y) != 0 else self.join(z, np.full(len(z), int(y)))
        return self.likelihood.mean(self.decoder.forward(zy))

    def sample(self, n, y=None, rng=None):
        """n draws of E[x | z, y], z ~ N(0, I): y is one class for all, n labels, or None
        for labels drawn uniformly."""
        rng = self.rng if rng is None else rng
        n = positive_int(n, "n")
        if y is None:
            y = rng.integers(0, self.n_classes, n)
        elif np.ndim(y) == 0:
            y = np.full(n, int(y))
        z = rng.standard_normal((n, self.latent_dim)).astype(self.dtype)
        return self.decode(z, y)

    def reconstruct(self, xa):
        mu, _ = self.encode(xa)
        return self.decode(mu, xa[:, self.input_dim:])
