"""The variational autoencoder: encoder -> (mu, logvar) -> z -> decoder -> likelihood.

Shapes: B examples of D dimensions, latent size m, L Monte Carlo samples per example,
P decoder outputs (D, or 2D for the learned-variance Gaussian).

The loss is the negative ELBO in nats per example,

    loss = (1 / (L B)) sum_{l, b} -log p(x_b | z_lb)  +  beta * (1 / B) sum_b KL(q(z|x_b) || N(0, I)),

with every normalising constant included. Its gradient is backpropagated by hand:
likelihood -> decoder -> reparameterisation -> (+ analytic KL gradient) -> encoder.
`loss_and_grads(..., objective="iwae")` and `free_bits=` select the other objectives of
npvae.objectives, which share this backward pass with per-sample weights.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..fast import backend
from .base import ModelBase, check_dtype
from ..checks import check_data, positive_int
from ..distributions import (LOG_2PI, LOGVAR_MAX, LOGVAR_MIN, Bernoulli, Gaussian, GaussianLearned,
                            gaussian_kl, make_likelihood, reparameterize)
from ..layers import MLP, Dense, check_activation, mlp_param_shapes
from ..objectives import (LossParts, gaussian_latent_loss, gaussian_log_weight_terms,
                         latent_backward, sample_weights)


class ELBOTerms(NamedTuple):
    """Per-example ELBO and its two parts, each of shape (B,), in nats."""

    elbo: np.ndarray
    log_px_z: np.ndarray  # E_q[log p(x|z)], averaged over the L samples
    kl: np.ndarray  # KL(q(z|x) || N(0, I)), analytic


class VAE(ModelBase):
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
        self.input_dim = positive_int(input_dim, "input_dim")
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.hidden = tuple(positive_int(h, "hidden size") for h in hidden)
        self.decoder_hidden = (self.hidden[::-1] if decoder_hidden is None else
                               tuple(positive_int(h, "decoder hidden size") for h in decoder_hidden))
        self.activation = check_activation(activation)
        self.likelihood = make_likelihood(likelihood)
        self.dtype = check_dtype(dtype)
        self.seed = seed

        D, m = self.input_dim, self.latent_dim
        self.output_dim = self.likelihood.n_outputs(D)  # P
        enc_sizes = [D, *self.hidden, 2 * m]
        dec_sizes = [m, *self.decoder_hidden, self.output_dim]
        shapes = mlp_param_shapes("encoder", enc_sizes) + mlp_param_shapes("decoder", dec_sizes)
        self._init_buffers(shapes)
        self.encoder = MLP("encoder", enc_sizes, self.activation, self.params, self._grad.views)
        self.decoder = MLP("decoder", dec_sizes, self.activation, self.params, self._grad.views)

        self._dense = None  # (encoder, decoder) Dense layers, for the fused step
        self._workspaces = {}  # (L, B) -> _Workspace

        self.rng = np.random.default_rng(seed)
        self.encoder.init(self.rng)
        self.decoder.init(self.rng)

    # ------------------------------------------------------------------ config

    @property
    def noise_dim(self):
        """Noise dimensions per sample: eps has shape (L, B, noise_dim)."""
        return self.latent_dim

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

    def __repr__(self):
        arch = "-".join(map(str, [self.input_dim, *self.hidden, f"({self.latent_dim})",
                                  *self.decoder_hidden, self.output_dim]))
        return (f"VAE({arch}, activation={self.activation!r}, likelihood={self.likelihood!r}, "
                f"dtype={self.dtype.name}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ forward / backward

    def _forward(self, x, eps):
        """Run encoder, reparameterisation and decoder, keeping what backward needs."""
        L, B, m = eps.shape
        h = self.encoder.forward(x)  # (B, 2m): [mu | logvar]
        mu, logvar = h[:, :m], h[:, m:]  # (B, m) each
        z, std = reparameterize(mu, logvar, eps)  # (L, B, m), (B, m)
        out = self.decoder.forward(z.reshape(L * B, m))  # (L B, P)
        return mu, logvar, std, out.reshape(L, B, self.output_dim)  # out: (L, B, P)

    def _loss(self, x, eps, beta, objective="elbo", free_bits=0.0):
        """LossParts of checked inputs, forward only (what finite differences evaluate)."""
        mu, logvar, _, out = self._forward(x, eps)
        return gaussian_latent_loss(self.likelihood.log_prob(x, out), eps, mu, logvar, beta,
                                    objective, free_bits)

    def _loss_and_grads(self, x, eps, beta, objective="elbo", free_bits=0.0):
        """The objective of checked inputs; writes dloss/dtheta into `flat_grads`.

        x: (B, D) and eps: (L, B, m), both already validated. Returns LossParts.
        The plain ELBO runs the fused kernels (`_loss_and_grads_fused`) under the "numba"
        backend; everything else runs the NumPy reference (`_loss_and_grads_reference`).
        """
        if backend.get_backend() == "numba" and objective == "elbo" and not free_bits:
            return self._loss_and_grads_fused(x, eps, beta)
        return self._loss_and_grads_reference(x, eps, beta, objective, free_bits)

    def _loss_and_grads_reference(self, x, eps, beta, objective="elbo", free_bits=0.0):
        """The readable NumPy step: the specification the fused step is tested against.

        Each sample's log p(x|z) enters the loss with weight a_lb / B (a = 1/L for the ELBO,
        the normalised importance weights for IWAE: see npvae.objectives).
        """
        L, B, m = eps.shape
        mu, logvar, std, out = self._forward(x, eps)
        log_px, dlog_px = self.likelihood.log_prob_and_grad(x, out)  # (L, B), (L, B, P)
        log_w = log_px + gaussian_log_weight_terms(eps, mu, logvar) if objective == "iwae" else log_px
        a = sample_weights(log_w, objective).astype(self.dtype)  # (L, B)

        dout = (-a / B)[..., None] * dlog_px  # dloss/dout, (L, B, P)
        dz = self.decoder.backward(dout.reshape(L * B, self.output_dim))  # (L B, m)
        dmu, dlogvar = latent_backward(dz.reshape(L, B, m), eps, mu, logvar, std, a, beta,
                                       objective, free_bits)  # (B, m) each, with the KL part
        dh = np.concatenate([dmu, dlogvar], axis=1)  # (B, 2m)
        self.encoder.backward(dh.astype(self.dtype, copy=False), need_dx=False)
        return gaussian_latent_loss(log_px, eps, mu, logvar, beta, objective, free_bits)

    # ------------------------------------------------------------------ fused step (numba backend)

    def _dense_layers(self):
        """(encoder, decoder) lists of their Dense layers, in forward order (cached)."""
        if self._dense is None:
            self._dense = tuple([layer for layer in mlp.layers if isinstance(layer, Dense)]
                                for mlp in (self.encoder, self.decoder))
        return self._dense

    def _workspace(self, L, B):
        """The preallocated buffers of a step with L samples of B examples (a few kept)."""
        ws = self._workspaces.get((L, B))
        if ws is None:
            if len(self._workspaces) >= _MAX_WORKSPACES:
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[(L, B)] = _Workspace(self, L, B)
        return ws

    def _loss_and_grads_fused(self, x, eps, beta):
        """The same step as `_loss_and_grads_reference`, on kernels and a reused workspace.

        BLAS writes every product into a preallocated array (np.matmul(..., out=)); numba
        fuses what surrounds them: bias + activation, the likelihood with its gradient and
        the output bias gradient, reparameterisation + KL. Nothing is allocated at a batch
        size seen before (see tests/test_backends.py).
        """
        from ..fast import kernels as K

        L, B, m = eps.shape
        x = np.ascontiguousarray(x)  # (B, D)
        eps = np.ascontiguousarray(eps)  # (L, B, m)
        ws = self._workspace(L, B)
        enc, dec = self._dense_layers()
        dt = self.dtype.type
        code, param = ws.act_code, ws.act_param

        # forward: encoder -> [mu | logvar] -> z -> decoder output
        inp = x
        for k, layer in enumerate(enc):
            y = ws.enc_y[k]  # (B, n_k)
            np.matmul(inp, layer.W, out=y)
            if k < len(enc) - 1:
                K.bias_act_forward(y, layer.b, code, param)
            inp = y
        h = ws.enc_y[-1]  # (B, 2m): the head's x @ W, made [mu | logvar] by the kernel
        kl_sum = K.reparam_kl_forward(h, enc[-1].b, eps, ws.z, ws.std)  # z: (L B, m)
        inp = ws.z
        for k, layer in enumerate(dec):
            y = ws.dec_y[k]  # (L B, n_k)
            np.matmul(inp, layer.W, out=y)
            if k < len(dec) - 1:
                K.bias_act_forward(y, layer.b, code, param)
            inp = y

        # likelihood: dec_y[-1] becomes dloss/dout = -dlog p/dout / (L B)
        logp_sum = self._fused_likelihood(K, ws, x, dt(1.0 / (L * B)), dec[-1])

        # backward through the decoder: d is dloss/d(pre-activation) of layer k
        d = ws.dec_y[-1]
        for k in range(len(dec) - 1, -1, -1):
            inp = ws.dec_y[k - 1] if k > 0 else ws.z
            np.matmul(inp.T, d, out=dec[k].dW)
            dx = ws.dec_dx[k]  # (L B, in_k)
            np.matmul(d, dec[k].W.T, out=dx)
            if k > 0:
                K.bias_act_backward(dx, ws.dec_y[k - 1], code, param, dec[k - 1].db)
            d = dx
        # d = dloss/dz, (L B, m) -> dloss/d[mu | logvar] with the KL term, (B, 2m)
        K.reparam_kl_backward(d, eps, h, ws.std, dt(beta / B), ws.dh, enc[-1].db)
        d = ws.dh
        for k in range(len(enc) - 1, -1, -1):
            inp = ws.enc_y[k - 1] if k > 0 else x
            np.matmul(inp.T, d, out=enc[k].dW)
            if k > 0:
                dx = ws.enc_dx[k]  # (B, in_k)
                np.matmul(d, enc[k].W.T, out=dx)
                K.bias_act_backward(dx, ws.enc_y[k - 1], code, param, enc[k - 1].db)
                d = dx

        rec = -logp_sum / (L * B)
        kl = kl_sum / B
        return LossParts(rec + beta * kl, rec, kl)

    def _fused_likelihood(self, K, ws, x, scale, out_layer):
        """Sum of log p(x|z) over the L B rows; turns ws.dec_y[-1] into dloss/dout in place."""
        a, b, db = ws.dec_y[-1], out_layer.b, out_layer.db
        lik, dt = self.likelihood, self.dtype.type
        kind = type(lik)
        if kind is Bernoulli:
            return K.bernoulli_loss_grad(x, a, b, scale, db, ws.colacc, ws.e, ws.s)
        if kind is Gaussian:
            log_norm = -0.5 * x.shape[1] * (LOG_2PI + 2 * np.log(lik.sigma))
            return K.gaussian_loss_grad(x, a, b, dt(lik.sigma ** -2), log_norm, scale, db,
                                        ws.colacc)
        if kind is GaussianLearned:
            return K.gaussian_learned_loss_grad(x, a, b, dt(LOGVAR_MIN), dt(LOGVAR_MAX), scale,
                                                db, ws.colacc, ws.e, ws.s)
        # continuous Bernoulli and user likelihoods: their NumPy log_prob_and_grad (allocates)
        return K._likelihood_twin(lik, x, a, b, scale, db)

    def elbo(self, x, eps=None, n_samples=1):
        """Per-example ELBO terms (ELBOTerms of (B,) arrays); no gradients."""
        x = self.check_input(x)
        eps = self._noise(eps, x.shape[0], n_samples)
        mu, logvar, _, out = self._forward(x, eps)
        log_px_z = self.likelihood.log_prob(x, out).mean(axis=0)  # (B,)
        kl = gaussian_kl(mu, logvar)  # (B,)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    def log_weights(self, x, eps):
        """log w = log p(x|z) + log p(z) - log q(z|x) per sample, (L, B), for checked x and eps.

        Used by the importance-weighted estimate of log p(x) (npvae.log_likelihood); see
        objectives.gaussian_log_weight_terms for the latent part. Computed in float64.
        """
        mu, logvar, _, out = self._forward(x, eps)
        log_px_z = self.likelihood.log_prob(x, out).astype(np.float64)  # (L, B)
        return log_px_z + gaussian_log_weight_terms(eps, mu, logvar)

    # ------------------------------------------------------------------ inference

    def encode(self, x):
        """Posterior parameters (mu, logvar), each (B, latent_dim)."""
        h = self.encoder.forward(self.check_input(x, check_support=False))
        m = self.latent_dim
        return h[:, :m].copy(), h[:, m:].copy()

    def decoder_output(self, z):
        """Raw decoder output (logits, means, or [mean | logvar]) for z of shape (N, latent_dim)."""
        z = check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)
        return self.decoder.forward(z)

    def decode(self, z):
        """E[x | z] under the likelihood (pixel probabilities for the Bernoulli), (N, D)."""
        return self.likelihood.mean(self.decoder_output(z))

    def sample(self, n, rng=None):
        """Decode n draws z ~ N(0, I) from the prior; returns their means E[x|z], (n, D)."""
        n = positive_int(n, "n")
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self.dtype))

    def reconstruct(self, x):
        """Decode the posterior mean: E[x | z = mu(x)], (B, D)."""
        mu, _ = self.encode(x)
        return self.decode(mu)


_MAX_WORKSPACES = 4  # distinct (L, B) step shapes kept (an epoch's last batch is often smaller)


class _Workspace:
    """Arrays a fused step of L samples x B examples writes into, allocated once.

    enc_y[k]: (B, n_k) encoder layer outputs (the last is the head, [mu | logvar]);
    dec_y[k]: (L B, n_k) decoder layer outputs (the last becomes dloss/dout in place);
    enc_dx[k], dec_dx[k]: gradients w.r.t. each layer's input (dec_dx[0] is dloss/dz);
    z: (L B, m); std: (B, m); dh: (B, 2m); e, s: (L B, P) scratch of the likelihoods
    whose exp / log1p NumPy computes (Bernoulli, learned-variance Gaussian);
    colacc: (P,) float64 column sums of log p.
    """

    def __init__(self, model, L, B):
        from ..fast.kernels import ACT_CODES, ACT_PARAMS

        enc, dec = model._dense_layers()
        dt, LB = model.dtype, L * B
        self.enc_y = [np.empty((B, layer.W.shape[1]), dt) for layer in enc]
        self.dec_y = [np.empty((LB, layer.W.shape[1]), dt) for layer in dec]
        self.enc_dx = [np.empty((B, layer.W.shape[0]), dt) if k > 0 else None
                       for k, layer in enumerate(enc)]
        self.dec_dx = [np.empty((LB, layer.W.shape[0]), dt) for layer in dec]
        m, P = model.latent_dim, model.output_dim
        self.z = np.empty((LB, m), dt)
        self.std = np.empty((B, m), dt)
        self.dh = np.empty((B, 2 * m), dt)
        split = type(model.likelihood) in (Bernoulli, GaussianLearned)  # NumPy exp / log1p
        self.e = np.empty((LB, P), dt) if split else None
        self.s = np.empty((LB, P), dt) if split else None
        self.colacc = np.empty(P, np.float64)
        self.act_code = ACT_CODES[model.activation]
        self.act_param = dt.type(ACT_PARAMS.get(model.activation, 0.0))
