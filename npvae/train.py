"""The training loop: seeded shuffling, minibatch gradient steps, per-epoch metrics."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .evaluate import negative_elbo
from .optim import Adam, clip_grad_norm


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf; carries the epoch and step where it happened."""

    def __init__(self, epoch, step, loss):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(
            f"training diverged at epoch {epoch}, step {step}: the loss is {loss}. "
            f"Try a lower learning rate (or clip_norm=...).")


@dataclass
class History:
    """Per-epoch metrics in nats per example: loss = rec + kl is the negative ELBO.

    With beta != 1 the objective minimised is rec + beta * kl; `loss` still reports the
    negative ELBO (beta = 1), so runs with different beta compare.

    Train figures average the minibatch losses seen during the epoch; validation figures
    are computed on x_val after the epoch (NaN when there is no x_val).
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_rec: list = field(default_factory=list)
    train_kl: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_rec: list = field(default_factory=list)
    val_kl: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def append(self, **row):
        for key, value in row.items():
            getattr(self, key).append(value)

    def as_dict(self):
        return {k: list(v) for k, v in self.__dict__.items()}


def fit(model, x_train, x_val=None, epochs=10, batch_size=128, optimizer=None, beta=1.0,
        seed=0, n_samples=1, clip_norm=None, callback=None):
    """Train `model` in place by minibatch descent on the negative ELBO; returns a History.

    Every epoch visits the training set once in an order drawn from a Generator seeded by
    `seed`, which also draws the reparameterisation noise (n_samples per example), so the
    same model, data and seed give bit-identical parameters. The last batch of an epoch
    may be smaller. `optimizer` defaults to Adam(lr=1e-3). `clip_norm` clips the global
    gradient norm before each step. `callback(epoch, history)` runs after each epoch.
    Raises TrainingDiverged, naming the epoch and step, as soon as a minibatch loss is NaN
    or inf.
    """
    x_train = model.check_input(x_train, "x_train")
    if x_val is not None:
        x_val = model.check_input(x_val, "x_val")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    beta = float(beta)
    if not (beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    optimizer = Adam(lr=1e-3) if optimizer is None else optimizer
    rng = np.random.default_rng(seed)
    n = x_train.shape[0]
    history = History()
    for epoch in range(1, int(epochs) + 1):
        start_time = time.perf_counter()
        order = rng.permutation(n)
        sums = np.zeros(3)  # loss, rec, kl, each weighted by batch size
        for step, start in enumerate(range(0, n, batch_size), 1):
            xb = x_train[order[start:start + batch_size]]  # (B, D)
            eps = rng.standard_normal((n_samples, xb.shape[0], model.latent_dim), dtype=model.dtype)
            parts = model._loss_and_grads(xb, eps, beta)
            if not math.isfinite(parts.loss):
                raise TrainingDiverged(epoch, step, parts.loss)
            if clip_norm is not None:
                clip_grad_norm(model.flat_grads, clip_norm)
            optimizer.step(model.flat_params, model.flat_grads)
            sums += xb.shape[0] * np.array(parts)
        _, rec, kl = sums / n
        val = (negative_elbo(model, x_val, seed=seed) if x_val is not None
               else (math.nan, math.nan, math.nan))
        history.append(epoch=epoch, train_loss=rec + kl, train_rec=rec, train_kl=kl,
                       val_loss=val[0], val_rec=val[1], val_kl=val[2],
                       seconds=time.perf_counter() - start_time)
        if callback is not None:
            callback(epoch, history)
    return history
