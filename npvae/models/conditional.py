"""A conditional VAE: q(z | x, y) and p(x | z, y) with a one-hot label y (Sohn et al., 2015).

The encoder reads [x | y] and the decoder [z | y]; the prior stays N(0, I), so the ELBO is
the VAE's with y appended to both networks' inputs:

    ELBO(x, y) = E_q(z|x,y)[log p(x | z, y)] - KL(q(z | x, y) || N(0, I)).

`ConditionalVAE` is a VAE with two of its hooks changed, nothing copied: so that the training
loop, the evaluation and the save files treat it like any model, the label rides along with
the data. The model's input is the joined array [x | onehot(y)] of width D + C
(`ConditionalVAE.join(x, y)` builds it), which the encoder reads as it is; `_data` hands only
the first D columns to the likelihood, and `_decoder_input` appends the label to z. Gradients
flow into [z | y] at the decoder's input; the y columns are data, so their share is dropped.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_data, positive_int
from .vae import VAE


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


class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder both see a one-hot class label.

    Inputs to every method that takes x are the joined (B, D + C) arrays from `join`:
    ``[x | onehot(y)]``. Parameter names follow VAE: encoder.* (input D + C), decoder.*
    (input latent_dim + C). `fit`, the evaluation functions, `save` and `load` treat it
    like any model.

    Parameters
    ----------
    input_dim : int
        D, the length of one flattened example (without the label).
    n_classes : int
        C, the number of classes; labels are 0 .. C - 1.
    latent_dim, hidden, activation, likelihood, decoder_hidden, dtype, seed
        As for `VAE`.
    """

    def __init__(self, input_dim, n_classes, latent_dim=20, hidden=(400,), activation="relu",
                 likelihood="bernoulli", decoder_hidden=None, dtype=np.float32, seed=0):
        self.n_classes = positive_int(n_classes, "n_classes")
        super().__init__(input_dim, latent_dim, hidden, activation, likelihood, decoder_hidden,
                         dtype, seed)

    @property
    def _label_width(self):
        return self.n_classes

    @property
    def input_width(self):
        """The columns of the joined input every method takes, D + C."""
        return self.input_dim + self.n_classes

    def get_config(self):
        """A JSON-able dict from which `load` rebuilds the architecture (a VAE's, with n_classes)."""
        return {"model": "conditional", **super().get_config(), "n_classes": self.n_classes}

    def __repr__(self):
        return (f"ConditionalVAE({self.input_dim}+{self.n_classes} classes, latent {self.latent_dim}, "
                f"hidden {list(self.hidden)}, likelihood={self.likelihood!r}, {self.n_params} parameters)")

    # ------------------------------------------------------------------ the two hooks

    def _data(self, xa):
        """The likelihood models the data columns only, not the label."""
        return xa[:, :self.input_dim]

    def _decoder_input(self, z, xa):
        """[z | y] for every sample: (L B, m + C), row l B + i carrying example i's label."""
        B, (LB, m) = xa.shape[0], z.shape
        zy = self._ws.get("zy", (LB, m + self.n_classes), z.dtype)
        zy[:, :m] = z
        zy[:, m:].reshape(LB // B, B, self.n_classes)[...] = xa[:, self.input_dim:]
        return zy

    # ------------------------------------------------------------------ data

    def join(self, x, y):
        """[x | onehot(y)]: the input every method takes.

        Parameters
        ----------
        x : array, shape (N, D)
            The examples.
        y : array, shape (N,) of int in [0, C), or (N, C) one-hot
            Their labels.

        Returns
        -------
        array, shape (N, D + C)
            In the model's dtype.
        """
        x = np.asarray(x)
        y = np.asarray(y)
        y = y if y.ndim == 2 else one_hot(y, self.n_classes)
        if x.ndim != 2 or y.shape != (x.shape[0], self.n_classes):
            raise ValueError(f"x {x.shape} and labels {y.shape} do not pair up as (N, D), "
                             f"(N, {self.n_classes})")
        return np.concatenate([x, y], axis=1).astype(self.dtype)

    def check_input(self, x, name="x", check_support=True):
        """Check the joined array: x columns as for a VAE, label columns one-hot.

        Parameters
        ----------
        x : array, shape (B, D + C)
            A joined array from `join`.
        name : str
            The name error messages give the array.
        check_support : bool
            Also check the data columns against the likelihood's support.

        Returns
        -------
        array, shape (B, D + C)
            x in the model's dtype.

        Raises
        ------
        ValueError
            Naming the problem: wrong shape, NaN or inf, label columns that are not
            one-hot, data outside the likelihood's support.
        """
        xa = check_data(x, name, self.input_width, "input_dim + n_classes", self.dtype)
        D = self.input_dim
        labels = xa[:, D:]
        if not (np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1)):
            raise ValueError(f"the last {self.n_classes} columns of {name} must be one-hot labels "
                             f"(build the input with ConditionalVAE.join(x, y))")
        if check_support:
            self.likelihood.check_data(xa[:, :D])
        return xa

    # ------------------------------------------------------------------ inference

    def decode(self, z, y):
        """E[x | z, y] under the likelihood.

        Parameters
        ----------
        z : array, shape (N, latent_dim)
        y : int, array of shape (N,) of int, or array of shape (N, C) one-hot
            One class for every row, or a label per row.

        Returns
        -------
        array, shape (N, D)
        """
        z = check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)
        zy = self.join(z, y) if np.ndim(y) != 0 else self.join(z, np.full(len(z), int(y)))
        return self.likelihood.mean(self.decoder.forward(zy))

    def decoder_output(self, z, y):
        """Raw decoder output for latent points z and labels y.

        Parameters
        ----------
        z : array, shape (N, latent_dim)
        y : int, array of shape (N,) of int, or array of shape (N, C) one-hot

        Returns
        -------
        array, shape (N, P)
            What the likelihood reads.
        """
        z = check_data(z, "z", self.latent_dim, "latent_dim", self.dtype)
        zy = self.join(z, y) if np.ndim(y) != 0 else self.join(z, np.full(len(z), int(y)))
        return self.decoder.forward(zy).copy()

    def sample(self, n, y=None, rng=None):
        """n draws of E[x | z, y] with z ~ N(0, I).

        Parameters
        ----------
        n : int
            The number of samples.
        y : int or array of shape (n,) of int, optional
            One class for all, n labels, or None for labels drawn uniformly.
        rng : numpy.random.Generator, optional
            Draws z (and the labels); default the model's Generator.

        Returns
        -------
        array, shape (n, D)
        """
        rng = self.rng if rng is None else rng
        n = self._sample_count(n)
        if y is None:
            y = rng.integers(0, self.n_classes, n)
        elif np.ndim(y) == 0:
            y = np.full(n, int(y))
        z = rng.standard_normal((n, self.latent_dim)).astype(self.dtype)
        return self.decode(z, y)

    def reconstruct(self, xa):
        """Decode the posterior mean with each example's own label: E[x | z = mu(x, y), y].

        Parameters
        ----------
        xa : array, shape (B, D + C)
            A joined array from `join`.

        Returns
        -------
        array, shape (B, D)
        """
        mu, _ = self.encode(xa)
        return self.decode(mu, xa[:, self.input_dim:])
