"""Optimizers, global-norm gradient clipping and learning-rate schedules.

An optimizer updates parameters in place from their gradients. `step(params, grads)`
takes either two arrays of the same shape (the model's flat buffers: one update over
every parameter at once) or two dicts of arrays with the same keys.
The learning rate `lr` is a number or a schedule: a function of the step count t = 1, 2, ...
Each update is a block: `adam_update_np` / `sgd_update_np` below are the NumPy twins that read
like the equations (the specification), and under the "numba" backend (npvae.fast.backend)
the kernels of npvae/fast/optim.py run instead (one pass, no temporaries).
Adam's update and bias correction are derived in notebooks/06_adam.ipynb.
"""
from __future__ import annotations

import math

import numpy as np

from .fast import backend


def _kernels_for(*arrays):
    """The kernel module when the numba backend is on and the arrays are contiguous float
    arrays of one dtype, else None (the twin runs)."""
    K = backend.kernels()
    p = arrays[0]
    if K is None or p.dtype not in (np.float32, np.float64):
        return None
    if all(a.dtype == p.dtype and a.flags.c_contiguous for a in arrays):
        return K
    return None


def adam_update_np(p, g, m, v, b1, b2, step, c2, eps, decay, tiny):
    """Adam in place, as array expressions:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- decay p - step m / (sqrt(v / c2) + eps)
    with step = lr / (1 - b1^t), c2 = 1 - b2^t and decay = 1 - lr * weight_decay.

    m and v entries smaller than `tiny` (the smallest normal number of the dtype) are stored as
    0. A parameter whose gradient is almost always 0 (a weight from a corner pixel) has its m
    decay by b1 per step into the subnormal range, where x86 arithmetic is ~100 times slower:
    on Fashion-MNIST at batch 32, 35,000 subnormal m made Adam 10x slower (3.2 ms per step).
    What is dropped is below 1e-38, against eps = 1e-8 in the denominator.
    """
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    m[np.abs(m) < tiny] = 0
    v[v < tiny] = 0
    p *= decay
    p -= step * m / (np.sqrt(v / c2) + eps)


def sgd_update_np(p, g, v, lr, momentum, nesterov, tiny):
    """SGD in place. momentum = 0: p <- p - lr g (v unused). Otherwise v <- momentum v + g
    (entries below `tiny` stored as 0, as Adam's), then p <- p - lr v, or, Nesterov,
    p <- p - lr (g + momentum v)."""
    if momentum == 0:
        p -= lr * g
        return
    v *= momentum
    v += g
    v[np.abs(v) < tiny] = 0
    p -= lr * (g + momentum * v) if nesterov else lr * v


def _pairs(params, grads):
    """(key, param array, grad array) triples for arrays or dicts of arrays."""
    if isinstance(params, dict):
        if set(params) != set(grads):
            raise ValueError("params and grads have different keys")
        return [(k, params[k], grads[k]) for k in params]
    return [(None, params, grads)]


class Optimizer:
    def __init__(self, lr):
        if not callable(lr) and not (float(lr) > 0 and math.isfinite(float(lr))):
            raise ValueError(f"lr must be a positive number or a schedule, got {lr!r}")
        self.lr = lr
        self.t = 0  # number of steps taken
        self.state = {}  # key -> dict of arrays shaped like that parameter

    def current_lr(self):
        """The learning rate of the step being taken (t already incremented)."""
        return float(self.lr(self.t)) if callable(self.lr) else float(self.lr)

    def _state(self, key, p, names):
        if key not in self.state:
            self.state[key] = {n: np.zeros_like(p) for n in names}
        st = self.state[key]
        if next(iter(st.values())).shape != p.shape:
            raise ValueError(f"parameter {key!r} changed shape since the optimizer last saw it")
        return st

    def state_dict(self):
        """Everything the next steps depend on, as arrays (for checkpoints).

        Hyperparameters are not included: rebuild the optimizer with the same arguments,
        then `load_state_dict`.

        Returns
        -------
        dict of str to ndarray
            "t" (the step count, a 0-d int64 array) and one copy per "<key>/<slot>" (Adam's
            "m" and "v", SGD's "v"), shaped like that parameter; key "" for a flat-array
            parameter.
        """
        out = {"t": np.array(self.t, dtype=np.int64)}
        for key, slots in self.state.items():
            for slot, value in slots.items():
                out[f"{'' if key is None else key}/{slot}"] = value.copy()
        return out

    def is_finite(self):
        """Whether every array of the state is free of NaN and inf (Adam's second moment
        overflows to inf once a gradient's square passes the float range)."""
        return all(np.isfinite(v).all() for slots in self.state.values() for v in slots.values())

    def load_state_dict(self, state):
        """Restore what `state_dict` returned.

        Parameters
        ----------
        state : dict of str to ndarray
            The output of `state_dict` (the arrays are copied).
        """
        self.t = int(state["t"])
        self.state = {}
        for name, value in state.items():
            if name == "t":
                continue
            key, slot = name.rsplit("/", 1)
            self.state.setdefault(key or None, {})[slot] = np.array(value, copy=True)

    def step(self, params, grads):
        """Take one step: update `params` in place from `grads`.

        Parameters
        ----------
        params : ndarray or dict of str to ndarray
            The parameters: one array (a model's ``flat_params``, so one update covers
            every parameter) or a dict of arrays.
        grads : ndarray or dict of str to ndarray
            Their gradients, of the same shapes (and keys).
        """
        self.t += 1
        lr = self.current_lr()
        for key, p, g in _pairs(params, grads):
            if p.shape != g.shape:
                raise ValueError(f"parameter {key!r} has shape {p.shape} but its gradient {g.shape}")
            self._update(key, p, g, lr)

    def _update(self, key, p, g, lr):
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent with optional (heavy-ball or Nesterov) momentum.

    The update of a parameter p with gradient g, in place::

        v <- momentum * v + g;  p <- p - lr * v            (momentum = 0: p <- p - lr * g)
        Nesterov: p <- p - lr * (g + momentum * v), with v already updated.

    Parameters
    ----------
    lr : float or callable
        The learning rate: a positive number, or a schedule, a function of the step
        count t = 1, 2, ... (`warmup_cosine`, `exponential_decay`).
    momentum : float
        In [0, 1); 0 is plain gradient descent.
    nesterov : bool
        Nesterov's momentum instead of the heavy ball.
    """

    def __init__(self, lr=1e-2, momentum=0.0, nesterov=False):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, key, p, g, lr):
        dt = p.dtype.type
        v = p if self.momentum == 0 else self._state(key, p, ["v"])["v"]  # p: an unused slot
        args = (dt(lr), dt(self.momentum), self.nesterov, dt(np.finfo(dt).tiny))
        K = _kernels_for(p, g, v)
        if K is None:
            return sgd_update_np(p, g, v, *args)
        update = K.sgd_update if K.PARALLEL_OPTIMIZER else K.sgd_update_serial
        update(p.reshape(-1), g.reshape(-1), v.reshape(-1), *args)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and optional decoupled weight decay.

    The update of a parameter p with gradient g at step t = 1, 2, ..., in place::

        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr * [ (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * p ]

    The weight-decay term is decoupled from the gradient (Loshchilov & Hutter's AdamW): it
    shrinks p directly instead of being added to g, where Adam's scaling would distort it.
    At t = 1 the corrected moments are g and g^2, so the first step is lr * sign(g) (for
    ``|g| >> eps``).

    Parameters
    ----------
    lr : float or callable
        The learning rate: a positive number, or a schedule, a function of the step
        count t = 1, 2, ... (`warmup_cosine`, `exponential_decay`).
    betas : (float, float)
        (b1, b2), the decay rates of the first and second moment, each in [0, 1).
    eps : float
        Added to the root of the second moment, > 0.
    weight_decay : float
        The decoupled weight decay, >= 0 (0: plain Adam).
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError("eps must be > 0 and weight_decay >= 0")
        self.b1, self.b2, self.eps, self.weight_decay = float(b1), float(b2), float(eps), float(weight_decay)

    def _update(self, key, p, g, lr):
        st = self._state(key, p, ["m", "v"])
        m, v = st["m"], st["v"]
        dt = p.dtype.type
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t  # the bias corrections
        args = (dt(self.b1), dt(self.b2), dt(lr / c1), dt(c2), dt(self.eps),
                dt(1 - lr * self.weight_decay), dt(np.finfo(dt).tiny))
        K = _kernels_for(p, g, m, v)
        if K is None:
            return adam_update_np(p, g, m, v, *args)
        update = K.adam_update if K.PARALLEL_OPTIMIZER else K.adam_update_serial
        update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), *args)


def global_norm(grads):
    """sqrt of the sum of squares of every entry, over one array or a dict of arrays.

    Parameters
    ----------
    grads : ndarray or dict of str to ndarray
        Arrays of any shapes.

    Returns
    -------
    float
        The global L2 norm.
    """
    arrays = grads.values() if isinstance(grads, dict) else [grads]
    return math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in arrays))


def clip_grad_norm(grads, max_norm):
    """Scale the gradients in place so their global norm is at most max_norm.

    Parameters
    ----------
    grads : ndarray or dict of str to ndarray
        The gradients (a model's ``flat_grads``, or a dict of arrays), scaled in place.
    max_norm : float
        The largest global norm allowed.

    Returns
    -------
    float
        The norm before clipping. A non-finite norm leaves the gradients untouched and is
        returned, for the caller to report.
    """
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in (grads.values() if isinstance(grads, dict) else [grads]):
            g *= scale
    return norm


# ------------------------------------------------------------------ schedules


def warmup_cosine(lr, total_steps, warmup_steps=0, final_lr=0.0):
    """A schedule: linear warm-up from 0 to lr over warmup_steps, then cosine decay to final_lr.

    Parameters
    ----------
    lr : float
        The peak learning rate, reached at step `warmup_steps`.
    total_steps : int
        The step at which the decay reaches `final_lr` (it stays there after).
    warmup_steps : int
        The length of the linear warm-up (0: none).
    final_lr : float
        The learning rate at the end.

    Returns
    -------
    callable
        ``schedule(t) -> float`` for the step count t = 1, 2, ..., to pass as an
        optimizer's `lr`.
    """

    def schedule(t):
        if t <= warmup_steps:
            return lr * t / max(warmup_steps, 1)
        frac = min((t - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * frac))

    return schedule


def exponential_decay(lr, rate, every_steps):
    """A schedule: lr * rate ** (t / every_steps).

    Parameters
    ----------
    lr : float
        The learning rate at t = 0.
    rate : float
        The factor applied every `every_steps` steps (smoothly in between).
    every_steps : int or float
        The number of steps over which the rate multiplies by `rate`.

    Returns
    -------
    callable
        ``schedule(t) -> float`` for the step count t = 1, 2, ..., to pass as an
        optimizer's `lr`.
    """
    return lambda t: lr * rate ** (t / every_steps)
