"""Run folders: the files of one training run, and the run itself.

A run folder holds

    config.json     the complete training settings (TrainConfig), enough to redo the run
    metrics.csv     one row per finished epoch (History columns)
    model.npz       the latest checkpoint: end of the last finished epoch, or the step
                    where Ctrl-C stopped training
    best.npz        the checkpoint of the epoch with the lowest validation loss
    figures/*.png   loss curves, reconstructions, samples, latent space, interpolation
                    (and, for a conditional run, classes.png: one row of samples per class)

Every file is written atomically (io.atomic_write), so a crash or Ctrl-C never leaves half
a file. The settings are in config.py, the checkpoint format in checkpoints.py, the data
in rundata.py; `train_run` trains into a folder, checkpointing every epoch.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write, read_archive
from ..models.vae import VAE
from ..train import FitState, History, TrainingDiverged, TrainingInterrupted, fit
from .checkpoints import save_checkpoint
from .config import TrainConfig, UsageError, read_config_file
from .rundata import check_model_fits

CONFIG_FILE, METRICS_FILE, LAST_FILE, BEST_FILE, FIGURES_DIR = (
    "config.json", "metrics.csv", "model.npz", "best.npz", "figures")


# ------------------------------------------------------------------ the run folder


def new_run_dir(root, dataset, now=None):
    """Create and return `root/<dataset>-<YYYYmmdd-HHMMSS>` (suffix -2, -3, ... if taken)."""
    stem = Path(str(dataset)).stem if str(dataset).lower().endswith((".npy", ".npz", ".csv")) \
        else str(dataset)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = Path(root) / f"{stem}-{stamp}"
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def prepare_out_dir(path):
    """Create `path` for a new run; UsageError if it already holds a run."""
    path = Path(path)
    if (path / CONFIG_FILE).exists() or (path / LAST_FILE).exists():
        raise UsageError(f"{path} already holds a run; continue it with --resume {path} "
                         f"or choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text(path, text):
    """Write a text file atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_config(run_dir, config):
    write_text(Path(run_dir) / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")


def read_run_config(run_dir):
    """The TrainConfig saved in a run folder."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise UsageError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    return TrainConfig.from_dict(read_config_file(path), source=str(path))


METRIC_COLUMNS = ("epoch", "train_loss", "train_rec", "train_kl", "val_loss", "val_rec",
                  "val_kl", "seconds")


def metrics_csv(history):
    """The CSV text of a History: a header, then one row per epoch."""
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    d = history.as_dict()
    for i in range(len(history.epoch)):
        writer.writerow([d["epoch"][i]] + [f"{d[c][i]:.6f}" for c in METRIC_COLUMNS[1:]])
    return buf.getvalue()


def write_metrics(run_dir, history):
    write_text(Path(run_dir) / METRICS_FILE, metrics_csv(history))


def read_metrics(path):
    """A History from a metrics.csv file (or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        raise UsageError(f"no metrics file at {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    history = History()
    for row in rows:
        history.append(epoch=int(row["epoch"]), **{c: float(row[c]) for c in METRIC_COLUMNS[1:]})
    return history


def model_path(run_or_model, best=False):
    """The save file for a run folder (model.npz, or best.npz) or a path to a file itself."""
    p = Path(run_or_model)
    if p.is_dir():
        name = BEST_FILE if best else LAST_FILE
        if not (p / name).exists():
            raise UsageError(f"{p} holds no {name} (is it a run folder?)")
        return p / name
    if not p.exists():
        raise UsageError(f"{p}: no such run folder or model file")
    return p


def load_model(run_or_model, best=False):
    """(model, TrainConfig or None, run folder or None) for a run folder or a model file."""
    from ..io import load

    path = model_path(run_or_model, best)
    try:
        model = load(path)
        _, _, extra = read_archive(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    config = None
    if "run_config" in extra:
        config = TrainConfig.from_dict(json.loads(str(extra["run_config"])), source=str(path))
    run_dir = path.parent if (path.parent / CONFIG_FILE).exists() else None
    if config is None and run_dir is not None:
        config = read_run_config(run_dir)
    return model, config, run_dir

# ------------------------------------------------------------------ a training run


def set_backend(name):
    """Select the compute backend through npvae.set_backend when this build has one."""
    import npvae

    if name is None:
        return
    if hasattr(npvae, "set_backend"):
        try:
            npvae.set_backend(name)
        except (ValueError, ImportError, RuntimeError) as err:
            raise UsageError(f"backend {name!r} is not available: {err}") from None
    elif name != "numpy":
        raise UsageError(f"backend {name!r} is not available in this build (only numpy)")


@dataclass
class Outcome:
    """How a training run ended: "finished", "interrupted" or "diverged"."""

    status: str
    model: VAE
    history: History
    state: FitState
    error: Exception | None = None


def train_run(run_dir, config, data, checkpoint=None, progress=None, stop=None):
    """Train per `config` into `run_dir`, checkpointing every epoch; returns an Outcome.

    A fresh run writes config.json and an epoch-0 checkpoint first, so a last good
    checkpoint always exists. After each epoch: metrics.csv, model.npz, and best.npz when
    the validation loss improved. A stop request (TrainingInterrupted) saves model.npz at
    the step where training stopped; divergence writes nothing more, so model.npz stays
    the end of the last good epoch.
    """
    run_dir = Path(run_dir)
    model, optimizer, state = _start(run_dir, config, data, checkpoint)
    saver = _Saver(run_dir, model, optimizer, state, config)
    try:
        # Overflow on the way to a NaN loss is reported once, as TrainingDiverged.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit(model, data.x_train, data.x_val, epochs=config.epochs,
                batch_size=config.batch_size, optimizer=optimizer, beta=config.beta,
                seed=config.seed, n_samples=config.n_samples, clip_norm=config.clip_norm,
                objective=config.objective, free_bits=config.free_bits,
                warmup_epochs=config.warmup_epochs, callback=saver.after_epoch, state=state,
                progress=progress, stop=stop,
                # A conditional run's label columns survive dynamic binarisation: the draw
                # u in [0, 1) gives u < 1 and never u < 0.
                binarize=config.binarize == "dynamic")
    except TrainingInterrupted:
        saver.save(LAST_FILE)
        write_metrics(run_dir, state.history)
        return Outcome("interrupted", model, state.history, state)
    except TrainingDiverged as err:
        return Outcome("diverged", model, state.history, state, err)
    return Outcome("finished", model, state.history, state)


def _start(run_dir, config, data, checkpoint):
    """(model, optimizer, FitState) to train: new ones, saved at once as the epoch-0
    checkpoint, or the checkpoint's with the learning rate of `config`. Writes config.json."""
    if checkpoint is None:
        model = config.build_model(data.input_dim, n_classes=data.n_classes)
        optimizer = config.build_optimizer()
        state = FitState.start(config.seed)
    else:
        model, optimizer, state = checkpoint.model, checkpoint.optimizer, checkpoint.state
        optimizer.lr = config.lr
    check_model_fits(model, data, config.dataset)
    write_config(run_dir, config)
    if checkpoint is None:
        save_checkpoint(run_dir / LAST_FILE, model, optimizer, state, config)
    return model, optimizer, state


class _Saver:
    """Writes a run's checkpoints; after each epoch the metrics, model.npz and, when the
    validation loss is the lowest so far, best.npz."""

    def __init__(self, run_dir, model, optimizer, state, config):
        self.run_dir, self.model, self.optimizer = run_dir, model, optimizer
        self.state, self.config = state, config
        finite = [v for v in state.history.val_loss if math.isfinite(v)]
        self.best = min(finite) if finite else math.inf

    def save(self, name):
        save_checkpoint(self.run_dir / name, self.model, self.optimizer, self.state, self.config)

    def after_epoch(self, epoch, history):
        write_metrics(self.run_dir, history)
        self.save(LAST_FILE)
        if history.val_loss[-1] < self.best:
            self.best = history.val_loss[-1]
            self.save(BEST_FILE)
