"""What every npvae model shares: flat parameter / gradient buffers, input and noise checks,
the public `loss_and_grads`, and config round trips.

A model subclass sets `input_dim`, `input_width` (columns check_input expects), `noise_dim`,
`likelihood`, `dtype`, `rng`, and implements `_loss(x, eps, beta, objective, free_bits, tc)`
and `_loss_and_grads(x, eps, beta, objective, free_bits, tc)` on checked arrays (`tc`: the
tcvae objective's other weights, an npvae.tcvae.TCWeights).
"""
from __future__ import annotations


import numpy as np

from ..checks import check_data, check_noise, positive_int
from ..limits import check_array
from ..settings import check_combination, check_settings
from ..params import FlatBuffer
from ..tcvae import TCWeights

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _rebuild(cls, config, flat_params, rng_state):
    """The model a pickle of ModelBase.__reduce__ describes."""
    model = cls.from_config(config)
    model.flat_params[...] = flat_params
    model.rng.bit_generator.state = rng_state
    return model


class ModelBase:
    """Shared state and checks; see the module docstring for what a subclass provides."""

    def _init_buffers(self, shapes):
        """One flat buffer for the parameters, one for their gradients; params are views."""
        self._theta = FlatBuffer(shapes, self.dtype)
        self._grad = FlatBuffer(shapes, self.dtype)
        self.params = self._theta.views

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

    @property
    def input_width(self):
        return self.input_dim

    def __reduce__(self):
        """Pickle as config, flat parameters and Generator state. `params`, the gradient
        views and every block hold views into the flat buffers; pickling those objects one
        by one would give each its own copy, and training an unpickled model would update
        a buffer that its `params` no longer show."""
        return (_rebuild, (type(self), self.get_config(), self.flat_params.copy(),
                           self.rng.bit_generator.state))

    @classmethod
    def from_config(cls, config):
        cfg = {k: v for k, v in config.items() if k != "model"}
        cfg["dtype"] = DTYPES[cfg.get("dtype", "float32")]
        return cls(**cfg)

    def check_input(self, x, name="x", check_support=True):
        """x as a (B, input_width) array of the model's dtype, or an error naming the problem."""
        return check_data(x, name, self.input_width, "input_dim", self.dtype,
                          self.likelihood if check_support else None)

    def _sample_count(self, n):
        """n as an int >= 1 whose decoded samples, (n, output_dim), fit npvae's byte cap."""
        n = positive_int(n, "n")
        check_array((n, self.output_dim), self.dtype.itemsize, f"{n:,} samples of the model")
        return n

    def _noise(self, eps, B, n_samples):
        """eps as an (L, B, noise_dim) array of the model's dtype; drawn from self.rng if None."""
        if eps is None:
            L = positive_int(n_samples, "n_samples")
            return self.rng.standard_normal((L, B, self.noise_dim), dtype=self.dtype)
        return check_noise(eps, "eps", (B, self.noise_dim), "(L, B, noise_dim)", self.dtype)

    def loss_and_grads(self, x, eps=None, beta=1.0, n_samples=1, objective="elbo", free_bits=0.0,
                       alpha=1.0, gamma=1.0, dataset_size=None):
        """(loss, grads): the objective in nats per example and a fresh dict of its gradients.

        eps: (L, B, noise_dim) standard-normal noise, or None to draw n_samples samples from
        the model's Generator. objective: "elbo" (beta weighs the KL, free_bits floors it per
        latent dimension), "iwae", or "tcvae" (alpha, beta and gamma weigh the index-code
        mutual information, the total correlation and the dimension-wise KL; q(z) is
        estimated over the batch as a sample of `dataset_size` rows, default the batch itself).
        """
        x = self.check_input(x)
        eps = self._noise(eps, x.shape[0], n_samples)
        settings = check_settings(dict(objective=objective, beta=beta, free_bits=free_bits,
                                       alpha=alpha, gamma=gamma), "loss_and_grads")
        check_combination(settings, "loss_and_grads")
        if dataset_size is not None:
            dataset_size = positive_int(dataset_size, "dataset_size")
        parts = self._loss_and_grads(x, eps, settings["beta"], settings["objective"],
                                     settings["free_bits"],
                                     TCWeights(settings["alpha"], settings["gamma"], dataset_size))
        return parts.loss, {name: view.copy() for name, view in self._grad.views.items()}
