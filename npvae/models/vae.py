"""The variational autoencoder: encoder -> (mu, logvar) -> z -> decoder -> likelihood.

Shapes: B examples of D dimensions, latent size m, L Monte Carlo samples per example,
P decoder outputs (D, or 2D for the learned-variance Gaussian).

The loss is the negative ELBO in nats per example,

    loss = (1 / (L B)) sum_{l, b} -log p(x_b | z_lb)  +  beta * (1 / B) sum_b KL(q(z|x_b) || N(0, I)),

with every normalising constant included. Its gradient is backpropagated by hand through the blocks the model is made of:
likelihood -> decoder (Dense blocks) -> latent block (reparameterisation, + the analytic KL's
gradient) -> encoder. `loss_and_grads(..., objective="iwae")` and `free_bits=` select the other
objectives of npvae.objectives, which share this backward pass with per-sample weights.
The step is written once (`_loss_and_grads`); every block picks its numba kernel or its NumPy
twin by the backend, so the code below is what runs under both.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_data, positive_int
from ..distributions import gaussian_kl
from ..latent import GaussianLatent
from ..layers import MLP, check_activation, mlp_param_shapes, scale_rows
from ..likelihoods import make_likelihood
from ..objectives import gaussian_latent_loss, gaussian_latent_step, gaussian_log_weight_terms
from ..params import Workspace
from ..tcvae import TCWeights
from .base import ModelBase, check_dtype


class ELBOTerms(NamedTuple):
    """Per-example ELBO and its two parts, each of shape (B,), in nats.

    ``elbo = log_px_z - kl`` for each example; a model's `elbo` method returns these.
    """

    elbo: np.ndarray
    log_px_z: np.ndarray  # E_q[log p(x|z)], averaged over the L samples
    kl: np.ndarray  # KL(q(z|x) || N(0, I)), analytic


class VAE(ModelBase):
    """A VAE with MLP encoder and decoder and a diagonal-Gaussian posterior.

    The encoder maps x (D numbers) through the `hidden` Dense layers to one head of 2m
    outputs, ``[mu | logvar]``; z = mu + exp(logvar / 2) * eps; the decoder maps z through
    `decoder_hidden` to the P outputs the likelihood reads (P = D, or 2D for
    "gaussian-learned").

    Parameters
    ----------
    input_dim : int
        D, the length of one flattened example.
    latent_dim : int
        m (J in the notebooks), the size of z.
    hidden : tuple of int
        Encoder hidden sizes; () makes the encoder a single linear map.
    activation : str
        "relu", "leaky_relu", "tanh", "sigmoid", "softplus", "elu" or "identity".
    likelihood : str or Likelihood
        "bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli", or a
        Likelihood instance such as ``npvae.Gaussian(sigma=0.1)``.
    decoder_hidden : tuple of int, optional
        Decoder hidden sizes; default: `hidden` reversed.
    dtype : numpy dtype
        np.float32 (training) or np.float64 (gradient checks).
    seed : int
        Seeds the model's Generator, which draws the initial weights and, when no eps
        is passed, the noise of `loss_and_grads`, `elbo` and `sample`.

    Attributes
    ----------
    params : dict of str to ndarray
        Names (``encoder.0.W`` of shape (D, hidden[0]), ``encoder.out.b`` of shape (2m,),
        ``decoder.out.W``, ...) mapped to views into one flat buffer, `flat_params`;
        editing an array in place changes the model.
    likelihood : Likelihood
        The observation model p(x|z).
    rng : numpy.random.Generator
        The model's Generator (see `seed`).
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

        D, m, C = self.input_dim, self.latent_dim, self._label_width
        self.output_dim = self.likelihood.n_outputs(D)  # P
        enc_sizes = [D + C, *self.hidden, 2 * m]  # C = 0 but in a ConditionalVAE
        dec_sizes = [m + C, *self.decoder_hidden, self.output_dim]
        shapes = mlp_param_shapes("encoder", enc_sizes) + mlp_param_shapes("decoder", dec_sizes)
        self._init_buffers(shapes)
        self.encoder = MLP("encoder", enc_sizes, self.activation, self.params, self._grad.views)
        self.decoder = MLP("decoder", dec_sizes, self.activation, self.params, self._grad.views)

        self.latent = GaussianLatent(m)
        self._ws = Workspace()  # the objective's weight buffers

        self.rng = np.random.default_rng(seed)
        self.encoder.init(self.rng)
        self.decoder.init(self.rng)

    _label_width = 0  # label columns appended to the encoder's and decoder's inputs

    # ------------------------------------------------------------------ config

    @property
    def noise_dim(self):
        """The noise dimensions per sample (latent_dim for a VAE), the last axis of eps, (L, B, noise_dim)."""
        return self.latent_dim

    def get_config(self):
        """A JSON-able dict from which `VAE.from_config` rebuilds the architecture.

        Returns
        -------
        dict
            The constructor's arguments (the likelihood as its own config dict, the dtype
            by name); the parameters themselves are not included (see `npvae.save`).
        """
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

    # ------------------------------------------------------------------ hooks (ConditionalVAE)

    def _data(self, x):
        """The columns of the input that the likelihood models: all of them."""
        return x

    def _decoder_input(self, z, x):
        """What the decoder reads for latent rows z: (L B, m) of the examples x: z itself."""
        return z

    # ------------------------------------------------------------------ the training step

    def _forward(self, x, eps):
        """Encoder -> latent block -> decoder on checked x: (B, D), eps: (L, B, m).

        Returns the decoder output, (L B, P), row l B + i for sample l of example i. It and
        the blocks' other arrays are buffers the next call reuses.
        """
        h = self.encoder.forward(x)  # (B, 2m): [mu | logvar]
        z = self.latent.forward(h, eps)  # (L B, m)
        return self.decoder.forward(self._decoder_input(z, x))  # (L B, P)

    def _loss_and_grads(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0, tc=TCWeights()):
        """The objective of checked inputs; writes dloss/dtheta into `flat_grads`; LossParts.

        One step for every objective and both backends: each block below runs its kernel
        under "numba" and its NumPy twin under "numpy" (see npvae.fast.backend).
        """
        m = self.latent_dim
        out = self._forward(x, eps)  # (L B, P)
        log_px, dout = self.likelihood.log_prob_and_grad_rows(self._data(x), out)  # (L B,), (L B, P)
        step = gaussian_latent_step(log_px, self.latent, beta, objective, free_bits, self._ws, tc)
        scale_rows(dout, step.w_rec)  # dloss/dout = w_rec * d log p / d out
        dz = self.decoder.backward(dout)[:, :m]  # (L B, m)
        if step.dz is not None:
            dz += step.dz  # tcvae: the minibatch estimates of log q(z), log q(z_j), and log p(z)
        dh = self.latent.backward(dz, step.w_latent, step.kl_w, prior=step.prior,
                                  entropy=step.entropy)  # (B, 2m), the KL's share included
        if step.dh is not None:
            dh += step.dh  # tcvae: the other examples' posteriors in the estimates of q(z)
        self.encoder.backward(dh, need_dx=False)
        return step.parts

    def _loss(self, x, eps, beta=1.0, objective="elbo", free_bits=0.0, tc=TCWeights()):
        """LossParts of checked inputs, forward only (what finite differences evaluate)."""
        log_px, mu, logvar = self._log_px_and_posterior(x, eps)
        return gaussian_latent_loss(log_px, eps, mu, logvar, beta, objective, free_bits, tc)

    # ------------------------------------------------------------------ evaluation

    def _log_px_and_posterior(self, x, eps):
        """(log p(x|z): (L, B), mu: (B, m), logvar: (B, m)) as fresh arrays."""
        L, B, m = eps.shape
        out = self._forward(x, eps).reshape(L, B, -1)
        h = self.encoder.layers[-1].y
        return self.likelihood.log_prob(self._data(x), out), h[:, :m].copy(), h[:, m:].copy()

    def elbo(self, x, eps=None, n_samples=1):
        """Per-example ELBO terms; no gradients.

        Parameters
        ----------
        x : array, shape (B, D)
            Examples in the likelihood's support.
        eps : array, shape (L, B, latent_dim), optional
            Standard-normal noise; drawn from the model's Generator when None.
        n_samples : int
            L, when `eps` is drawn.

        Returns
        -------
        ELBOTerms
            ``elbo``, ``log_px_z`` (E_q[log p(x|z)], averaged over the L samples) and
            ``kl`` (the analytic KL(q(z|x) || N(0, I))), each of shape (B,), in nats.
        """
        x = self.check_input(x)
        log_px, mu, logvar = self._log_px_and_posterior(x, self._noise(eps, x.shape[0], n_samples))
        log_px_z = log_px.mean(axis=0)  # (B,)
        kl = gaussian_kl(mu, logvar)  # (B,)
        return ELBOTerms(log_px_z - kl, log_px_z, kl)

    def log_weights(self, x, eps):
        """log w = log p(x|z) + log p(z) - log q(z|x) per sample, for checked x and eps.

        Used by the importance-weighted estimate of log p(x) (npvae.log_likelihood); see
        objectives.gaussian_log_weight_terms for the latent part.

        Parameters
        ----------
        x : array, shape (B, D)
            Examples already checked by `check_input`.
        eps : array, shape (L, B, latent_dim)
            Standard-normal noise of the model's dtype.

        Returns
        -------
        array, shape (L, B)
            The log importance weights, float64.
        """
        log_px, mu, logvar = self._log_px_and_posterior(x, eps)
        return log_px.astype(np.float64) + gaussian_log_weight_terms(eps, mu, logvar)

    # ------------------------------------------------------------------ inference

    def encode(self, x):
        """Posterior parameters of q(z|x) = N(mu, diag(exp(logvar))).

        Parameters
        ----------
        x : array, shape (B, D)
            Examples (any finite values: the likelihood's support is not checked).

        Returns
        -------
        mu : array, shape (B, latent_dim)
        logvar : array, shape (B, latent_dim)
            Fresh arrays of the model's dtype.
        """
        h = self.encoder.forward(self.check_input(x, check_support=False))
        m = self.latent_dim
        return h[:, :m].copy(), h[:, m:].copy()

    def decoder_output(self, z):
        """Raw decoder output for latent points z: logits, means, or [mean | logvar].

        Parameters
        ----------
        z : array, shape (N, latent_dim)

        Returns
        -------
        array, shape (N, P)
            What the likelihood reads (P = D, or 2D for "gaussian-learned").
        """
        return self.decoder.forward(check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)).copy()

    def decode(self, z):
        """E[x | z] under the likelihood (pixel probabilities for the Bernoulli).

        Parameters
        ----------
        z : array, shape (N, latent_dim)

        Returns
        -------
        array, shape (N, D)
        """
        z = check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)
        return self.likelihood.mean(self.decoder.forward(z))

    def sample(self, n, rng=None):
        """Decode n draws z ~ N(0, I) from the prior.

        Parameters
        ----------
        n : int
            The number of samples.
        rng : numpy.random.Generator, optional
            Draws z; default the model's Generator.

        Returns
        -------
        array, shape (n, D)
            The means E[x|z] of the n draws.
        """
        n = self._sample_count(n)
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self.dtype))

    def reconstruct(self, x):
        """Decode the posterior mean: E[x | z = mu(x)].

        Parameters
        ----------
        x : array, shape (B, D)

        Returns
        -------
        array, shape (B, D)
        """
        mu, _ = self.encode(x)
        return self.decode(mu)
