"""Checkpoints: a model save file that also carries what resuming a run needs.

A checkpoint is an ordinary npvae save file (npvae.load reads it) whose extra arrays carry
the optimizer's state_dict (keys ``optim.<name>``), the FitState (``fit.epoch``,
``fit.step``, ``fit.order``, ``fit.sums``, ``fit.seconds``, ``fit.rng``: the Generator's
state as JSON, ``fit.history``: the History as JSON) and ``run_config`` (the TrainConfig as
JSON). The file is written atomically (npvae.io.save), so a crash or Ctrl-C never leaves
half a checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import load_into, model_from_config, read_archive, save
from ..models.vae import VAE
from ..optim import Adam
from ..train import FitState, History
from .config import TrainConfig, UsageError


_OPTIM = "optim."


def save_checkpoint(path, model, optimizer, state, config):
    """Write model, optimizer state, FitState and TrainConfig to `path` atomically."""
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
    if state.order is not None:
        extra["fit.order"] = np.asarray(state.order, dtype=np.int64)
    save(model, path, extra=extra)


@dataclass
class Checkpoint:
    """What load_checkpoint returns: a ready model, optimizer and FitState, and the settings."""

    model: VAE
    optimizer: Adam
    state: FitState
    config: TrainConfig


def load_checkpoint(path):
    """Rebuild model, optimizer (state restored) and FitState from a checkpoint file."""
    path = Path(path)
    try:
        model_config, params, extra = read_archive(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such checkpoint") from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    if "fit.rng" not in extra or "run_config" not in extra:
        raise UsageError(f"{path} is a model save, not a training checkpoint; it cannot be resumed")
    config = TrainConfig.from_dict(json.loads(str(extra["run_config"])), source=str(path))
    try:
        model = model_from_config(model_config)
        load_into(model, params, str(path))
    except (TypeError, KeyError, ValueError) as err:
        raise UsageError(f"{path}: the saved model cannot be rebuilt ({err})") from None
    optimizer = config.build_optimizer()
    optimizer.load_state_dict({k[len(_OPTIM):]: v for k, v in extra.items() if k.startswith(_OPTIM)})
    state = FitState(
        rng=FitState.rng_from_json(str(extra["fit.rng"])),
        epoch=int(extra["fit.epoch"]), step=int(extra["fit.step"]),
        order=np.array(extra["fit.order"]) if "fit.order" in extra else None,
        sums=[float(v) for v in extra["fit.sums"]], seconds=float(extra["fit.seconds"]),
        history=History.from_dict(json.loads(str(extra["fit.history"]))))
    return Checkpoint(model, optimizer, state, config)
