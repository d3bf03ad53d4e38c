"""Checkpoints: a model save file that also carries what resuming a run needs.

A checkpoint is an ordinary npvae save file (npvae.load reads it) whose extra arrays carry
the optimizer's state_dict (keys ``optim.<name>``), the FitState (``fit.epoch``,
``fit.step``, ``fit.order``, ``fit.sums``, ``fit.seconds``, ``fit.rng``: the Generator's
state as JSON, ``fit.history``: the History as JSON), ``run_config`` (the TrainConfig as
JSON) and ``data`` (the fingerprint of the training data, see rundata.fingerprint). The
file is written atomically (npvae.io.save), so a crash or a kill never leaves half a
checkpoint.

Loading checks every part before it is used: the model's parameters as npvae.io does,
then each piece of state for its type and shape (Adam's moments shaped like the flat
parameters and finite, the step counts whole numbers >= 0, the order a 1-D integer
array). Whether the order indexes the training data is checked when the data are loaded
(`check_resumable`), as is the data fingerprint. A problem is a UsageError naming the
file and the part.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import SaveFile, save
from ..models.vae import VAE
from ..optim import Adam
from ..train import FitState, History, check_state
from .config import TrainConfig, UsageError

_OPTIM = "optim."
_ADAM_SLOTS = ("/m", "/v")  # the flat parameter's key is "", so its slots are "/m", "/v"


def save_checkpoint(path, model, optimizer, state, config, fingerprint=None):
    """Write model, optimizer state, FitState, TrainConfig and data fingerprint to `path`."""
    extra = {_OPTIM + k: v for k, v in optimizer.state_dict().items()}
    extra.update({
        "fit.epoch": np.array(state.epoch, dtype=np.int64),
        "fit.step": np.array(state.step, dtype=np.int64),
        "fit.sums": np.array(state.sums, dtype=np.float64),
        "fit.seconds": np.array(state.seconds, dtype=np.float64),
        "fit.rng": np.array(state.rng_state_json()),
        "fit.history": np.array(json.dumps(state.history.as_dict())),
        "run_config": np.array(json.dumps(config.to_dict())),
    })
    if fingerprint is not None:
        extra["data"] = np.array(json.dumps(fingerprint))
    if state.order is not None:
        extra["fit.order"] = np.asarray(state.order, dtype=np.int64)
    save(model, path, extra=extra)


@dataclass
class Checkpoint:
    """What load_checkpoint returns: a ready model, optimizer and FitState, the settings,
    and the fingerprint of the data it was trained on (None in older checkpoints)."""

    model: VAE
    optimizer: Adam
    state: FitState
    config: TrainConfig
    fingerprint: dict | None = None
    path: Path | None = None


class _Reader:
    """The checked parts of one open checkpoint; every problem is a UsageError naming it."""

    def __init__(self, f, path):
        self.f, self.path = f, path

    def fail(self, problem):
        raise UsageError(f"{self.path}: {problem}; the checkpoint is damaged or was edited")

    def array(self, key, shape=None, kinds="f"):
        if not self.f.has_extra(key):
            self.fail(f"it lacks {key}")
        found, dtype = self.f.declared_extra(key)
        if dtype.kind not in kinds or (shape is not None and found != shape):
            want = f"shape {shape}" if shape is not None else "any shape"
            self.fail(f"{key} is {dtype} of shape {found}, expected {kinds!r} numbers of {want}")
        value = self.f.read_extra(key)
        if dtype.kind == "f" and not np.isfinite(value).all():
            self.fail(f"{key} holds NaN or inf")
        return value

    def count(self, key):
        value = int(self.array(key, (), "iu"))
        if value < 0:
            self.fail(f"{key} is {value}, below 0")
        return value

    def json(self, key):
        if not self.f.has_extra(key):
            self.fail(f"it lacks {key}")
        try:
            return self.f.read_json("extra/" + key, key)
        except ValueError as err:
            raise UsageError(str(err)) from None

    def optimizer(self, config, n_params):
        """An Adam with the settings' learning rate and the saved state, every slot checked."""
        names = [k for k in self.f.extra_names if k.startswith(_OPTIM)]
        slots = sorted(k[len(_OPTIM):] for k in names if k != _OPTIM + "t")
        t = self.count(_OPTIM + "t")
        if slots not in ([], sorted(_ADAM_SLOTS)) or (t > 0 and not slots):
            self.fail(f"the optimizer state holds {slots} at step {t}; Adam's is "
                      f"{list(_ADAM_SLOTS)} after its first step")
        state = {"t": np.array(t)}
        for slot in slots:
            state[slot] = self.array(_OPTIM + slot, (n_params,))
        if slots and (state["/v"] < 0).any():
            self.fail("Adam's second moment optim./v has negative entries")
        optimizer = config.build_optimizer()
        optimizer.load_state_dict(state)
        return optimizer

    def fingerprint(self):
        fp = self.json("data")
        shapes_ok = isinstance(fp, dict) and all(
            isinstance(fp.get(k), list) and len(fp[k]) == 2 and
            all(isinstance(n, int) and n >= 0 for n in fp[k]) for k in ("train", "held_out"))
        if not shapes_ok or not isinstance(fp.get("sha256"), str):
            self.fail("its data fingerprint is not {train: [N, D], held_out: [N, D], sha256}")
        return fp

    def fit_state(self):
        try:
            rng = FitState.rng_from_json(json.dumps(self.json("fit.rng")))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            self.fail(f"fit.rng is not a Generator's state ({err})")
        try:
            history = History.from_dict(self.json("fit.history"))
        except (TypeError, ValueError, AttributeError) as err:
            self.fail(f"fit.history is not a training history ({err})")
        order = None
        if self.f.has_extra("fit.order"):
            shape, _ = self.f.declared_extra("fit.order")
            if len(shape) != 1:
                self.fail(f"fit.order has shape {shape}, not one index per training example")
            order = self.array("fit.order", kinds="iu").astype(np.int64)
        sums = self.array("fit.sums", (3,))
        state = FitState(rng=rng, epoch=self.count("fit.epoch"), step=self.count("fit.step"),
                         order=order, sums=[float(v) for v in sums],
                         seconds=float(self.array("fit.seconds", ())), history=history)
        if len(history) != state.epoch:
            self.fail(f"fit.history has {len(history)} epochs but fit.epoch is {state.epoch}")
        if (state.step > 0) != (order is not None):
            self.fail(f"fit.step is {state.step} but the epoch's order is "
                      f"{'missing' if order is None else 'present'}")
        return state


def load_checkpoint(path):
    """Rebuild model, optimizer (state restored) and FitState from a checkpoint file."""
    path = Path(path)
    try:
        with SaveFile(path) as f:
            if not (f.has_extra("fit.rng") and f.has_extra("run_config")):
                raise UsageError(f"{path} is a model save, not a training checkpoint; it cannot "
                                 f"be resumed")
            reader = _Reader(f, path)
            config = TrainConfig.from_dict(reader.json("run_config"), source=f"{path} (run_config)")
            model = f.load_model()
            optimizer = reader.optimizer(config, model.n_params)
            state = reader.fit_state()
            fingerprint = reader.fingerprint() if f.has_extra("data") else None
    except FileNotFoundError:
        raise UsageError(f"{path}: no such checkpoint") from None
    except (ValueError, OSError) as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(str(err)) from None
    return Checkpoint(model, optimizer, state, config, fingerprint, path)


def check_resumable(checkpoint, data, data_fingerprint, config):
    """UsageError unless `checkpoint` can continue on `data` (whose fingerprint is given)
    with `config`: the same data it was trained on, and a FitState that indexes them."""
    from .rundata import describe_fingerprint

    saved = checkpoint.fingerprint
    if saved is not None and saved != data_fingerprint:
        raise UsageError(f"{checkpoint.path} was trained on {describe_fingerprint(saved)}, but "
                         f"dataset {config.dataset!r} now gives "
                         f"{describe_fingerprint(data_fingerprint)}; a run resumes only on "
                         f"the data it was trained on")
    try:
        check_state(checkpoint.state, data.x_train.shape[0], config.batch_size)
    except ValueError as err:
        raise UsageError(f"{checkpoint.path}: {err}; the checkpoint is damaged or was "
                         f"edited") from None
