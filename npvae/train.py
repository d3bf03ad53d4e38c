"""The training loop: seeded shuffling, minibatch gradient steps, per-epoch metrics.

`fit` trains a model in place. Everything else the next step depends on -- the epoch and
step reached, the shuffling order of the current epoch, the running sums of the epoch's
losses and the Generator that shuffles and draws the noise -- lives in a `FitState`. A
caller that keeps the FitState (with the model's parameters and the optimizer's
state_dict) can stop training after any step and later continue it with bit-identical
results: npvae.app.checkpoints stores exactly these things in a checkpoint.

Stopping: `fit(..., stop=f)` calls f() after every step and, when it returns True, raises
`TrainingInterrupted` at that step boundary (the model, optimizer and FitState are then
consistent). `catch_stop_signals()` turns Ctrl-C and SIGTERM into such a request.

The settings are checked in npvae.settings; the progress reporters live in npvae.progress.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .evaluate import active_units, mutual_information, negative_elbo
from .optim import Adam, clip_grad_norm
from .progress import Progress
from .limits import check_array
from .settings import FIT_SETTINGS, check_combination, check_settings
from .tcvae import TCWeights


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf; carries the epoch and step where it happened.

    Parameters
    ----------
    epoch : int
        The epoch (counted from 1) in which training diverged.
    step : int or None
        The step of that epoch (counted from 1) whose minibatch loss was not finite.
        None: every step's loss was finite but the model the epoch ended with is not (its
        held-out loss, a parameter or the optimizer's state is NaN or inf): the epoch's
        last step blew up.
    loss : float or str
        The non-finite loss (the minibatch's, or the held-out one), or a phrase saying
        what else was not finite.
    """

    def __init__(self, epoch, step, loss):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(f"training diverged {self.where}: the {self.what} is {loss}. Try a "
                         f"learning rate at least 10 times lower (or clip_norm=...).")

    @property
    def where(self):
        """Where it happened, as the message says it ("at epoch E, step S" or "at the end of epoch E")."""
        return (f"at the end of epoch {self.epoch}" if self.step is None
                else f"at epoch {self.epoch}, step {self.step}")

    @property
    def what(self):
        """Which number was not finite, "loss" (a minibatch's) or "held-out loss"."""
        return "held-out loss" if self.step is None else "loss"


class TrainingInterrupted(KeyboardInterrupt):
    """fit stopped on request at a step boundary; `state` is the FitState to resume from.

    Parameters
    ----------
    state : FitState
        Where the fit stands: pass it back to `fit` (with the model's parameters and the
        optimizer's state as they are) to continue exactly where it stopped.
    """

    def __init__(self, state):
        self.state = state
        super().__init__(f"training stopped at epoch {state.epoch + 1}, after step {state.step}")


# The held-out rows I_q(x; z) is estimated on each epoch. Its exact log q(z) scores every
# code against every posterior, O(N^2 J) work: 1,000 rows keep it a small part of an MNIST
# epoch (see History), and put its ceiling at log 1000 = 6.9 nats, far above the collapsed
# model's 0 (an estimate near the ceiling says only that the posteriors barely overlap).
DIAGNOSTIC_ROWS = 1000
ACTIVE_THRESHOLD = 0.01  # Var_x(mu_j) above which a latent dimension counts as active


@dataclass
class History:
    """Per-epoch metrics in nats per example: loss = rec + kl is the negative ELBO.

    With beta != 1 the objective minimised is rec + beta * kl; `loss` still reports the
    negative ELBO (beta = 1), so runs with different beta compare.

    Train figures average the minibatch losses seen during the epoch; validation figures
    are computed on x_val after the epoch (NaN when there is no x_val). Each attribute is
    a list with one entry per finished epoch.

    Two validation columns watch for posterior collapse, the encoder ignoring its input.
    They describe q(z|x), what `encode` returns: a HierarchicalVAE's first latent layer,
    q(z1|x). The active units count the dimensions j with Var_x(mu_j(x)) > 0.01 over all
    of x_val (Burda et al., 2016); I_q(x; z) says how well the code tells the examples
    apart (npvae.mutual_information, on the first `DIAGNOSTIC_ROWS` rows of x_val, so it
    never exceeds log min(N_val, 1000); one code per example, the same noise every epoch
    from `seed`, so two epochs differ only by the model). On MNIST (60,000 training rows,
    10,000 held out, a 784-400-J model) they add 0.08 s (J = 2) to 0.16 s (J = 50) to an
    epoch of about 1.7 s; on digits, whose epochs take about 13 ms, they add 5 ms (J = 2)
    to 20 ms (J = 20), as its 359 held-out rows give I_q most of its O(N^2 J) work.

    Attributes
    ----------
    epoch : list of int
        The epoch numbers, counted from 1.
    train_loss : list of float
        The training negative ELBO, averaged over the epoch's minibatches.
    train_rec : list of float
        Its reconstruction part, -E_q[log p(x|z)].
    train_kl : list of float
        Its KL part (the rate).
    val_loss : list of float
        The negative ELBO on x_val, after the epoch.
    val_rec : list of float
        Its reconstruction part.
    val_kl : list of float
        Its KL part.
    val_active_units : list of int (NaN without x_val)
        The number of active latent dimensions on x_val, after the epoch.
    val_mutual_info : list of float
        The estimate of I_q(x; z) in nats on x_val's first DIAGNOSTIC_ROWS rows.
    seconds : list of float
        The wall time of each epoch.
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_rec: list = field(default_factory=list)
    train_kl: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_rec: list = field(default_factory=list)
    val_kl: list = field(default_factory=list)
    val_active_units: list = field(default_factory=list)
    val_mutual_info: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    # Columns added after the others: a row, a checkpoint's history or a metrics file
    # without them holds NaN there (npvae.app.runs.read_metrics reads them this way).
    LATER_COLUMNS = ("val_active_units", "val_mutual_info")

    def append(self, **row):
        """Add one epoch's row: keyword arguments named like the attributes (epoch=3, ...);
        a LATER_COLUMNS entry left out is NaN."""
        for key in self.LATER_COLUMNS:
            row.setdefault(key, math.nan)
        for key, value in row.items():
            getattr(self, key).append(value)

    def as_dict(self):
        """The metrics as a dict of plain lists, attribute name -> list (JSON-able)."""
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d):
        """Inverse of as_dict (unknown keys are an error, missing ones start empty, except
        the LATER_COLUMNS: NaN for each epoch of a history saved before they existed)."""
        d = dict(d)
        n = len(d.get("epoch", ()))
        for key in cls.LATER_COLUMNS:
            d.setdefault(key, [math.nan] * n)
        return cls(**{k: [metric_value(k, x) for x in v] for k, v in d.items()})

    def __len__(self):
        return len(self.epoch)


def metric_value(column, x):
    """One History entry as its column holds it: int epochs, an int count of active units
    (NaN when there was none), floats elsewhere."""
    if column == "epoch":
        return int(x)
    x = float(x)
    return int(x) if column == "val_active_units" and math.isfinite(x) else x


def latent_diagnostics(model, x, seed, n_rows=DIAGNOSTIC_ROWS):
    """(active units, I_q(x; z)) of a model's posterior on the examples x.

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        A model whose ``encode(x)`` gives (mu, logvar) (a HierarchicalVAE's of z1).
    x : array, shape (N, input_width)
        Checked examples (a ConditionalVAE's joined rows).
    seed : int
        Seeds the noise of the mutual-information estimate.
    n_rows : int
        I_q(x; z) is estimated on the first min(N, n_rows) rows, at O(n_rows^2 J) cost.

    Returns
    -------
    n_active : int
        The dimensions with Var_x(mu_j) > ACTIVE_THRESHOLD over all N rows.
    mutual_info : float
        npvae.mutual_information's estimate in nats, between 0 and log min(N, n_rows) up
        to Monte Carlo error.
    """
    n_active, _ = active_units(model, x, threshold=ACTIVE_THRESHOLD)
    x = x[:n_rows]
    # Score the codes in blocks of about 2^19 float64 numbers (4 MB, cache-sized): twice
    # as fast as larger blocks at J >= 20. The block is memory only: the same numbers up to
    # the rounding of a float32 encoder, whose BLAS products round by block size.
    block = max(1, 2**19 // (x.shape[0] * model.latent_dim))
    mutual_info, _ = mutual_information(model, x, n_samples=1, batch_size=block, seed=seed)
    return n_active, mutual_info


@dataclass
class FitState:
    """Where a fit stands between two steps.

    Parameters
    ----------
    rng : numpy.random.Generator
        The Generator that shuffles and draws the reparameterisation noise.
    epoch : int
        Epochs completed.
    step : int
        Steps completed in the epoch under way (0 at a boundary).
    order : array of int, shape (N,), or None
        That epoch's shuffling order, a permutation of the N training rows (None at a
        boundary: the next epoch draws a new one).
    sums : list of 3 floats
        Batch-size-weighted sums of (loss, rec, kl) over the epoch's steps so far.
    seconds : float
        Wall time already spent in the epoch under way (before an interruption).
    history : History
        The finished epochs' metrics.
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
        """The Generator's bit-generator state as a JSON string (ints stay exact).

        Returns
        -------
        str
            What `rng_from_json` turns back into an identical Generator.
        """
        return json.dumps(self.rng.bit_generator.state)

    @staticmethod
    def rng_from_json(text):
        """A Generator whose state is the JSON `rng_state_json` wrote.

        Parameters
        ----------
        text : str
            The output of `rng_state_json`.

        Returns
        -------
        numpy.random.Generator
            A Generator that continues the saved stream exactly.
        """
        state = json.loads(text)
        bitgen = getattr(np.random, state["bit_generator"])()
        bitgen.state = state
        return np.random.Generator(bitgen)


# ------------------------------------------------------------------ stopping on Ctrl-C


class StopFlag:
    """A flag set from a signal handler and read by fit between steps (call it to read).
    `signal` is the number of the signal that set it (None while unset)."""

    def __init__(self):
        self.signal = None

    @property
    def is_set(self):
        return self.signal is not None

    def __call__(self):
        return self.is_set


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def catch_stop_signals():
    """Within the block, the first Ctrl-C (SIGINT) or SIGTERM sets the yielded StopFlag
    instead of ending the process.

    fit(..., stop=flag) then finishes the step under way and raises TrainingInterrupted,
    so the model, optimizer and FitState are consistent and can be checkpointed. A second
    signal raises KeyboardInterrupt at once. Outside the main thread (where Python allows
    no signal handlers) the flag is never set and the signals behave as usual.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set:
            raise KeyboardInterrupt
        flag.signal = signum

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def what_is_not_finite(model, optimizer):
    """None when the model's parameters and the optimizer's state are all finite (a state
    training can continue from, worth a checkpoint); else which of them is not, in words."""
    if not np.isfinite(model.flat_params).all():
        return "a parameter is NaN or inf"
    if not optimizer.is_finite():
        return "the optimizer's state overflowed"
    return None


def check_batch_memory(model, n_rows, batch_size, n_samples):
    """The batch size a fit over n_rows examples really uses, min(batch_size, n_rows), once
    its noise buffer (n_samples, B, noise_dim) is known to fit npvae's byte cap
    (LimitError otherwise). A caller can check before it writes anything."""
    B = min(batch_size, n_rows)
    check_array((n_samples, B, model.noise_dim), model.dtype.itemsize,
                f"the noise of a batch of {B:,} examples with n_samples {n_samples:,}")
    return B


def check_tcvae_batches(n_rows, batch_size):
    """ValueError unless every batch of a fit over n_rows examples holds at least 2: the
    tcvae objective estimates q(z) for each example from the other examples of its batch."""
    if n_rows > 1 and (batch_size < 2 or n_rows % batch_size == 1):
        raise ValueError(f"the tcvae objective estimates q(z) from the other examples of each "
                         f"batch, but {n_rows} rows in batches of {batch_size} leave a batch of "
                         f"1; choose another batch_size")


def check_state(state, n_rows, batch_size):
    """ValueError unless FitState `state` can continue a fit over n_rows examples in
    batches of batch_size: its order a permutation of range(n_rows), its step inside the
    epoch. (A checkpoint edited by hand, or resumed on other data, fails here.)"""
    n_steps = -(-n_rows // batch_size)
    if state.epoch < 0 or not 0 <= state.step < n_steps:
        raise ValueError(f"the fit state stands at epoch {state.epoch}, step {state.step}, "
                         f"outside an epoch of {n_steps} steps")
    if state.order is None:
        if state.step:
            raise ValueError(f"the fit state stands at step {state.step} without the epoch's order")
        return
    order = np.asarray(state.order)
    if order.dtype.kind not in "iu" or order.shape != (n_rows,) or not np.array_equal(
            np.sort(order), np.arange(n_rows)):
        low, high = (int(order.min()), int(order.max())) if order.size else (0, -1)
        raise ValueError(f"the fit state's order ({order.dtype}, {order.shape[0] if order.ndim else 0} "
                         f"entries in [{low}, {high}]) is not a permutation of the {n_rows} "
                         f"training rows")


# ------------------------------------------------------------------ the loop


def fit(model, x_train, x_val=None, epochs=10, batch_size=128, optimizer=None, beta=1.0,
        seed=0, n_samples=1, clip_norm=None, callback=None, *, objective="elbo", free_bits=0.0,
        warmup_epochs=0, alpha=1.0, gamma=1.0, state=None, progress=None, stop=None,
        binarize=False):
    """Train `model` in place by minibatch descent on the negative ELBO.

    Every epoch visits the training set once in an order drawn from a Generator seeded by
    `seed`, which also draws the reparameterisation noise (`n_samples` per example), so the
    same model, data and seed give bit-identical parameters. The last batch of an epoch
    may be smaller. The settings (`epochs` ... `warmup_epochs`, `binarize`) are checked
    against npvae.settings.

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        The model to train; its parameters are updated in place.
    x_train : array, shape (N, input_width)
        The training examples (a ConditionalVAE's joined ``[x | onehot(y)]`` rows).
    x_val : array, shape (N_val, input_width), optional
        Held-out examples, evaluated after every epoch; without them the ``val_*``
        columns of the History are NaN.
    epochs : int
        The number of epochs to train; with `state`, the total count, including the
        epochs already done.
    batch_size : int
        Examples per step, B.
    optimizer : Adam or SGD, optional
        Default ``Adam(lr=1e-3)``.
    beta : float
        The weight of the KL term in the objective (beta-VAE), or of the total correlation
        under the tcvae objective; the History still reports the plain negative ELBO.
    seed : int
        Seeds the shuffling, the noise and the validation noise.
    n_samples : int
        L, the Monte Carlo samples of z per example (the k of the IWAE objective).
    clip_norm : float, optional
        Clip the global gradient norm to this value before each step.
    callback : callable, optional
        ``callback(epoch, history)``, called after each epoch.
    objective : {"elbo", "iwae", "tcvae"}
        The L-sample average ELBO, the importance-weighted bound over the `n_samples`
        draws, or beta-TCVAE's split of the KL (npvae.tcvae: q(z) is estimated over each
        batch as a sample of the N training rows, so batches need at least 2 examples).
        Keyword-only, like every parameter below.
    free_bits : float
        Floor each latent dimension's batch-average KL at this many nats (ELBO objective
        only; 0 turns it off). `objective` and `free_bits` go to the model's training
        step; the History still reports the negative ELBO and its parts.
    warmup_epochs : int
        KL warm-up: the KL weight rises linearly, step by step, from beta / S at the
        first of the S = warmup_epochs * steps_per_epoch warm-up steps to beta, and stays
        at beta after them (ELBO objective only; 0 turns it off).
    alpha, gamma : float
        The tcvae objective's weights of the index-code mutual information and of the
        dimension-wise KL (beta weighs the total correlation); 1 for other objectives.
    state : FitState, optional
        A state to continue from: its Generator is used instead of `seed`'s, and it is
        updated in place as training goes, so a caller holding it always sees where the
        fit stands. Restore the optimizer's state_dict and the model's parameters
        alongside it, and pass the same data, batch_size, n_samples and seed (the seed
        also fixes the validation noise), or the continuation is no longer the
        uninterrupted run.
    progress : Progress, optional
        A progress reporter (see npvae.progress); None reports nothing.
    stop : callable, optional
        A function of no arguments checked after every step; when it returns True, fit
        raises TrainingInterrupted(state) at that step boundary.
    binarize : bool
        Dynamic binarisation: each batch is replaced by a fresh Bernoulli draw (pixel = 1
        with probability x) from the fit's Generator, just before its noise.

    Returns
    -------
    History
        The per-epoch metrics, in nats per example (``state.history`` when continuing).

    Raises
    ------
    TrainingDiverged
        As soon as a minibatch loss is NaN or inf (before that step changes the
        parameters), and at the end of an epoch whose held-out loss, parameters or
        optimizer state are not finite (a step blew up), before the epoch is recorded or
        `callback` sees it. It names the epoch and step.
    TrainingInterrupted
        When `stop` returns True; it carries the FitState to resume from.
    SettingError
        A ValueError naming a bad setting, its constraint and the value.
    """
    settings = check_settings(dict(
        epochs=epochs, batch_size=batch_size, beta=beta, seed=seed, n_samples=n_samples,
        clip_norm=clip_norm, objective=objective, free_bits=free_bits,
        warmup_epochs=warmup_epochs, alpha=alpha, gamma=gamma, binarize=binarize), "fit",
        FIT_SETTINGS)
    check_combination(settings, "fit")
    x_train = model.check_input(x_train, "x_train")
    if settings["objective"] == "tcvae":
        check_tcvae_batches(x_train.shape[0], settings["batch_size"])
    if x_val is not None:
        x_val = model.check_input(x_val, "x_val")
    loop = _Loop(model, x_train, x_val, settings,
                 Adam(lr=1e-3) if optimizer is None else optimizer,
                 Progress() if progress is None else progress, callback, stop)
    if state is None:
        state = FitState.start(settings["seed"])
    else:
        check_state(state, x_train.shape[0], settings["batch_size"])
    try:
        while state.epoch < loop.epochs:
            loop.run_epoch(state)
    finally:
        loop.progress.close()
    return state.history


class _Loop:
    """One fit call: the model, data, checked settings and reporters, and the buffers that
    every step reuses, so the loop allocates nothing of batch size."""

    def __init__(self, model, x_train, x_val, settings, optimizer, progress, callback, stop):
        self.model, self.x_train, self.x_val = model, x_train, x_val
        self.optimizer, self.progress, self.callback, self.stop = optimizer, progress, callback, stop
        self.epochs, self.batch_size, self.n_samples = (
            settings["epochs"], settings["batch_size"], settings["n_samples"])
        self.beta, self.objective, self.free_bits = (
            settings["beta"], settings["objective"], settings["free_bits"])
        self.seed, self.clip_norm, self.binarize = (
            settings["seed"], settings["clip_norm"], settings["binarize"])
        self.tc = TCWeights(settings["alpha"], settings["gamma"], x_train.shape[0])
        self.n, D = x_train.shape
        self.m = model.noise_dim  # noise numbers per example and sample
        self.n_steps = -(-self.n // self.batch_size)
        self.warmup_steps = settings["warmup_epochs"] * self.n_steps
        # The noise buffer is flat: its first L*b*m entries reshape to a C-contiguous
        # (L, b, m) view for any batch size b, which the Generator fills in the order
        # standard_normal((L, b, m)) would -- the draws are bit-identical to allocating a
        # fresh array. No batch is larger than the data, so neither is a buffer.
        B = check_batch_memory(model, self.n, self.batch_size, self.n_samples)
        self.x_buf = np.empty((B, D), dtype=x_train.dtype)  # (B, D)
        self.u_buf = np.empty((B, D), dtype=x_train.dtype) if self.binarize else None
        self.eps_flat = np.empty(self.n_samples * B * self.m, dtype=model.dtype)

    def run_epoch(self, state):
        """The epoch under way from where `state` stands: its remaining steps, then its
        metrics. A stop request between two steps raises TrainingInterrupted."""
        epoch = state.epoch + 1
        start_time = time.perf_counter() - state.seconds
        if state.order is None:
            state.order = state.rng.permutation(self.n)
            state.step, state.sums, state.seconds = 0, [0.0, 0.0, 0.0], 0.0
        self.progress.start_epoch(epoch, self.epochs, self.n_steps, state.step)
        s_loss, s_rec, s_kl = state.sums
        for step in range(state.step + 1, self.n_steps + 1):
            b, parts = self.step(state.rng, state.order, epoch, step)
            s_loss += b * parts.loss
            s_rec += b * parts.rec
            s_kl += b * parts.kl
            self.progress.step(s_loss / min(step * self.batch_size, self.n))
            if self.stop is not None and step < self.n_steps and self.stop():
                state.step, state.sums = step, [s_loss, s_rec, s_kl]
                state.seconds = time.perf_counter() - start_time
                raise TrainingInterrupted(state)
        self.end_epoch(state, epoch, s_rec / self.n, s_kl / self.n, start_time)

    def step(self, rng, order, epoch, step):
        """Step `step` (1-based) of `epoch`: gather the batch (binarised afresh if asked),
        draw its noise, take one optimizer step; returns (batch size, the LossParts)."""
        model, optimizer, objective, free_bits = (
            self.model, self.optimizer, self.objective, self.free_bits)
        start = (step - 1) * self.batch_size
        idx = order[start:start + self.batch_size]
        b = idx.shape[0]
        xb = self.x_buf[:b]  # (b, D)
        np.take(self.x_train, idx, axis=0, out=xb, mode="clip")
        if self.binarize:
            ub = self.u_buf[:b]
            rng.random(dtype=ub.dtype, out=ub)
            np.less(ub, xb, out=xb)
        eps = self.eps_flat[:self.n_samples * b * self.m].reshape(self.n_samples, b, self.m)
        rng.standard_normal(dtype=model.dtype, out=eps)  # (L, b, m)
        beta_t = self.kl_weight((epoch - 1) * self.n_steps + step)
        parts = model._loss_and_grads(xb, eps, beta_t, objective, free_bits, self.tc)
        if not math.isfinite(parts.loss):
            raise TrainingDiverged(epoch, step, parts.loss)
        if self.clip_norm is not None:
            clip_grad_norm(model.flat_grads, self.clip_norm)
        optimizer.step(model.flat_params, model.flat_grads)
        return b, parts

    def kl_weight(self, t):
        """The KL weight at global step t (1-based): beta, ramped up over the warm-up."""
        return self.beta * min(1.0, t / self.warmup_steps) if self.warmup_steps else self.beta

    def end_epoch(self, state, epoch, rec, kl, start_time):
        """Record the finished epoch (validation included), move `state` to the boundary,
        report it, and raise TrainingInterrupted on a stop request."""
        val = (negative_elbo(self.model, self.x_val, seed=self.seed) if self.x_val is not None
               else (math.nan, math.nan, math.nan))
        if self.x_val is not None and not math.isfinite(val[0]):
            raise TrainingDiverged(epoch, None, val[0])
        broken = what_is_not_finite(self.model, self.optimizer)
        if broken:
            raise TrainingDiverged(epoch, None, f"finite, but {broken}")
        n_active, mutual_info = (latent_diagnostics(self.model, self.x_val, self.seed)
                                 if self.x_val is not None else (math.nan, math.nan))
        state.history.append(epoch=epoch, train_loss=rec + kl, train_rec=rec, train_kl=kl,
                             val_loss=val[0], val_rec=val[1], val_kl=val[2],
                             val_active_units=n_active, val_mutual_info=mutual_info,
                             seconds=time.perf_counter() - start_time)
        state.epoch, state.step, state.order = epoch, 0, None
        state.sums, state.seconds = [0.0, 0.0, 0.0], 0.0
        self.progress.end_epoch(state.history)
        if self.callback is not None:
            self.callback(epoch, state.history)
        if self.stop is not None and state.epoch < self.epochs and self.stop():
            raise TrainingInterrupted(state)
