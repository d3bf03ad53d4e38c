"""The training loop: seeded shuffling, minibatch gradient steps, per-epoch metrics.

`fit` trains a model in place. Everything else the next step depends on -- the epoch and
step reached, the shuffling order of the current epoch, the running sums of the epoch's
losses and the Generator that shuffles and draws the noise -- lives in a `FitState`. A
caller that keeps the FitState (with the model's parameters and the optimizer's
state_dict) can stop training after any step and later continue it with bit-identical
results: `npvae.runs` stores exactly these things in a checkpoint.

Stopping: `fit(..., stop=f)` calls f() after every step and, when it returns True, raises
`TrainingInterrupted` at that step boundary (the model, optimizer and FitState are then
consistent). `catch_sigint()` turns Ctrl-C into such a request.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .evaluate import negative_elbo
from .optim import Adam, clip_grad_norm
from .settings import FIT_SETTINGS, check_combination, check_settings


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf; carries the epoch and step where it happened."""

    def __init__(self, epoch, step, loss):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(
            f"training diverged at epoch {epoch}, step {step}: the loss is {loss}. "
            f"Try a lower learning rate (or clip_norm=...).")


class TrainingInterrupted(KeyboardInterrupt):
    """fit stopped on request at a step boundary; `state` is the FitState to resume from."""

    def __init__(self, state):
        self.state = state
        super().__init__(f"training stopped at epoch {state.epoch + 1}, after step {state.step}")


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

    @classmethod
    def from_dict(cls, d):
        """Inverse of as_dict (unknown keys are an error, missing ones start empty)."""
        return cls(**{k: [int(x) if k == "epoch" else float(x) for x in v] for k, v in d.items()})

    def __len__(self):
        return len(self.epoch)


@dataclass
class FitState:
    """Where a fit stands between two steps.

    epoch: epochs completed. step: steps completed in the epoch under way (0 at a boundary).
    order: that epoch's shuffling order (None at a boundary: the next epoch draws a new one).
    sums: batch-size-weighted sums of (loss, rec, kl) over the epoch's steps so far.
    seconds: wall time already spent in the epoch under way (before an interruption).
    rng: the Generator that shuffles and draws the reparameterisation noise.
    history: the finished epochs' metrics.
    """

    rng: np.random.Generator
    epoch: int = 0
    step: int = 0
    order: np.ndarray | None = None
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    seconds: float = 0.0
    history: History = field(default_factory=History)

    @classmethod
    def start(cls, seed):
        """The state before the first step of a fit seeded with `seed`."""
        return cls(rng=np.random.default_rng(seed))

    def rng_state_json(self):
        """The Generator's bit-generator state as a JSON string (ints stay exact)."""
        return json.dumps(self.rng.bit_generator.state)

    @staticmethod
    def rng_from_json(text):
        """A Generator whose state is the JSON `rng_state_json` wrote."""
        state = json.loads(text)
        bitgen = getattr(np.random, state["bit_generator"])()
        bitgen.state = state
        return np.random.Generator(bitgen)


# ------------------------------------------------------------------ progress reporting


class Progress:
    """What fit tells a progress reporter; this base class reports nothing."""

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        pass

    def step(self, running_loss):
        pass

    def end_epoch(self, history):
        pass

    def close(self):
        pass


class BarProgress(Progress):
    """A tqdm bar per epoch, its postfix the epoch's running mean loss."""

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stderr
        self.bar = None

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        from tqdm import tqdm

        self.bar = tqdm(total=n_steps, initial=done_steps, desc=f"epoch {epoch}/{epochs}",
                        file=self.file, leave=True, unit="step", dynamic_ncols=True)

    def step(self, running_loss):
        self.bar.set_postfix_str(f"loss {running_loss:.3f}", refresh=False)
        self.bar.update(1)

    def end_epoch(self, history):
        text = f"train {history.train_loss[-1]:.3f}"
        if math.isfinite(history.val_loss[-1]):
            text += f", val {history.val_loss[-1]:.3f}"
        self.bar.set_postfix_str(text, refresh=False)
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineProgress(Progress):
    """One line per finished epoch (for logs and pipes, where a bar would be noise)."""

    def __init__(self, file=None, epochs=None):
        self.file = file if file is not None else sys.stdout
        self.epochs = epochs

    def start_epoch(self, epoch, epochs, n_steps, done_steps):
        self.epochs = epochs

    def end_epoch(self, history):
        print(f"epoch {history.epoch[-1]}/{self.epochs}  {_epoch_summary(history)}  "
              f"({history.seconds[-1]:.2f} s)", file=self.file, flush=True)


def _epoch_summary(history):
    text = f"train {history.train_loss[-1]:.3f}"
    if math.isfinite(history.val_loss[-1]):
        text += f"  val {history.val_loss[-1]:.3f} (rec {history.val_rec[-1]:.3f}, " \
                f"kl {history.val_kl[-1]:.3f})"
    return text


def make_progress(mode="auto", stream=None):
    """A Progress for mode "bar", "lines", "none" or "auto" (a bar on a terminal, else lines)."""
    stream = sys.stdout if stream is None else stream
    if mode == "auto":
        mode = "bar" if getattr(stream, "isatty", lambda: False)() else "lines"
    if mode == "bar":
        return BarProgress(stream)
    if mode == "lines":
        return LineProgress(stream)
    if mode == "none":
        return Progress()
    raise ValueError(f"progress mode must be auto, bar, lines or none, got {mode!r}")


# ------------------------------------------------------------------ stopping on Ctrl-C


class StopFlag:
    """A flag set from a signal handler and read by fit between steps (call it to read)."""

    def __init__(self):
        self.is_set = False

    def __call__(self):
        return self.is_set


@contextmanager
def catch_sigint():
    """Within the block, the first Ctrl-C sets the yielded StopFlag instead of raising.

    fit(..., stop=flag) then finishes the step under way and raises TrainingInterrupted,
    so the model, optimizer and FitState are consistent and can be checkpointed. A second
    Ctrl-C raises KeyboardInterrupt at once. Outside the main thread (where Python allows
    no signal handlers) the flag is never set and Ctrl-C behaves as usual.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set:
            raise KeyboardInterrupt
        flag.is_set = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------ the loop


def _check_args(model, x_train, x_val, settings):
    """The data checked by the model, and fit's settings checked through npvae.settings."""
    settings = check_settings(settings, "fit", FIT_SETTINGS)
    check_combination(settings["objective"], settings["beta"], settings["free_bits"],
                      settings["warmup_epochs"], "fit")
    x_train = model.check_input(x_train, "x_train")
    if x_val is not None:
        x_val = model.check_input(x_val, "x_val")
    return x_train, x_val, settings


def fit(model, x_train, x_val=None, epochs=10, batch_size=128, optimizer=None, beta=1.0,
        seed=0, n_samples=1, clip_norm=None, callback=None, *, objective="elbo", free_bits=0.0,
        warmup_epochs=0, state=None, progress=None, stop=None, binarize=False):
    """Train `model` in place by minibatch descent on the negative ELBO; returns a History.

    Every epoch visits the training set once in an order drawn from a Generator seeded by
    `seed`, which also draws the reparameterisation noise (n_samples per example), so the
    same model, data and seed give bit-identical parameters. The last batch of an epoch
    may be smaller. `optimizer` defaults to Adam(lr=1e-3). `clip_norm` clips the global
    gradient norm before each step. `callback(epoch, history)` runs after each epoch.
    Raises TrainingDiverged, naming the epoch and step, as soon as a minibatch loss is NaN
    or inf (before that step changes the parameters).
    The settings (epochs ... warmup_epochs, binarize) are checked against npvae.settings: a
    bad one raises a SettingError (a ValueError) naming it, its constraint and the value.

    Keyword-only:
    objective: "elbo" or "iwae" (the n_samples-sample importance-weighted bound); free_bits
        floors each latent dimension's KL in the ELBO objective. Both go to the model's
        `_loss_and_grads`; the History still reports the negative ELBO and its parts.
    warmup_epochs: KL warm-up -- the KL weight rises linearly, step by step, from beta / S
        at the first of the S = warmup_epochs * steps_per_epoch warm-up steps to beta, and
        stays at beta after them (ELBO objective only; 0 turns it off).
    state: a FitState to continue from (its Generator is used instead of `seed`'s, and
        it is updated in place as training goes, so a caller holding it always sees where
        the fit stands); `epochs` is then the total count, including epochs already done.
        Restore the optimizer's state_dict and the model's parameters alongside it, and
        pass the same data, batch_size, n_samples and seed (the seed also fixes the
        validation noise), or the continuation is no longer the uninterrupted run.
    progress: a Progress reporter (see make_progress); None reports nothing.
    stop: a function of no arguments checked after every step; when it returns True, fit
        raises TrainingInterrupted(state) at that step boundary.
    binarize: dynamic binarisation -- each batch is replaced by a fresh Bernoulli draw
        (pixel = 1 with probability x) from the fit's Generator, just before its noise.
    """
    x_train, x_val, settings = _check_args(model, x_train, x_val, dict(
        epochs=epochs, batch_size=batch_size, beta=beta, seed=seed, n_samples=n_samples,
        clip_norm=clip_norm, objective=objective, free_bits=free_bits,
        warmup_epochs=warmup_epochs, binarize=binarize))
    epochs, batch_size, beta, n_samples, clip_norm, free_bits, warmup_epochs = (
        settings[k] for k in ("epochs", "batch_size", "beta", "n_samples", "clip_norm",
                              "free_bits", "warmup_epochs"))
    optimizer = Adam(lr=1e-3) if optimizer is None else optimizer
    state = FitState.start(seed) if state is None else state
    progress = Progress() if progress is None else progress
    n, D = x_train.shape
    m = model.noise_dim  # noise numbers per example and sample
    n_steps = -(-n // batch_size)
    warmup_steps = warmup_epochs * n_steps
    rng = state.rng
    # Buffers reused by every step, so the loop allocates nothing of batch size. The noise
    # buffer is flat: its first L*b*m entries reshape to a C-contiguous (L, b, m) view for
    # any batch size b, which the Generator fills in the order standard_normal((L, b, m))
    # would -- the draws are bit-identical to allocating a fresh array.
    x_buf = np.empty((batch_size, D), dtype=x_train.dtype)  # (B, D)
    u_buf = np.empty((batch_size, D), dtype=x_train.dtype) if binarize else None
    eps_flat = np.empty(n_samples * batch_size * m, dtype=model.dtype)

    try:
        while state.epoch < epochs:
            epoch = state.epoch + 1
            start_time = time.perf_counter() - state.seconds
            if state.order is None:
                state.order = rng.permutation(n)
                state.step, state.sums, state.seconds = 0, [0.0, 0.0, 0.0], 0.0
            order = state.order
            progress.start_epoch(epoch, epochs, n_steps, state.step)
            s_loss, s_rec, s_kl = state.sums
            for step in range(state.step + 1, n_steps + 1):
                start = (step - 1) * batch_size
                idx = order[start:start + batch_size]
                b = idx.shape[0]
                xb = x_buf[:b]  # (b, D)
                np.take(x_train, idx, axis=0, out=xb, mode="clip")
                if binarize:
                    ub = u_buf[:b]
                    rng.random(dtype=ub.dtype, out=ub)
                    np.less(ub, xb, out=xb)
                eps = eps_flat[:n_samples * b * m].reshape(n_samples, b, m)  # (L, b, m)
                rng.standard_normal(dtype=model.dtype, out=eps)
                t = (epoch - 1) * n_steps + step  # global step, 1-based
                beta_t = beta * min(1.0, t / warmup_steps) if warmup_steps else beta
                parts = model._loss_and_grads(xb, eps, beta_t, objective, free_bits)
                if not math.isfinite(parts.loss):
                    raise TrainingDiverged(epoch, step, parts.loss)
                if clip_norm is not None:
                    clip_grad_norm(model.flat_grads, clip_norm)
                optimizer.step(model.flat_params, model.flat_grads)
                s_loss += b * parts.loss
                s_rec += b * parts.rec
                s_kl += b * parts.kl
                progress.step(s_loss / min(step * batch_size, n))
                if stop is not None and step < n_steps and stop():
                    state.step, state.sums = step, [s_loss, s_rec, s_kl]
                    state.seconds = time.perf_counter() - start_time
                    raise TrainingInterrupted(state)
            rec, kl = s_rec / n, s_kl / n
            val = (negative_elbo(model, x_val, seed=seed) if x_val is not None
                   else (math.nan, math.nan, math.nan))
            state.history.append(epoch=epoch, train_loss=rec + kl, train_rec=rec, train_kl=kl,
                                 val_loss=val[0], val_rec=val[1], val_kl=val[2],
                                 seconds=time.perf_counter() - start_time)
            state.epoch, state.step, state.order = epoch, 0, None
            state.sums, state.seconds = [0.0, 0.0, 0.0], 0.0
            progress.end_epoch(state.history)
            if callback is not None:
                callback(epoch, state.history)
            if stop is not None and state.epoch < epochs and stop():
                raise TrainingInterrupted(state)
    finally:
        progress.close()
    return state.history
