"""Run folders: the files of one training run, and the run itself.

A run folder holds

    config.json     the complete training settings (TrainConfig), enough to redo the run
    metrics.csv     one row per finished epoch (History columns; the active units and
                    I_q(x; z) are NaN in a file written before they were recorded)
    model.npz       the latest checkpoint: end of the last finished epoch, or the step
                    where Ctrl-C stopped training
    best.npz        the checkpoint of the epoch with the lowest validation loss
    figures/*.png   loss curves, reconstructions, samples, latent space, interpolation,
                    KL per latent dimension, latent traversals (and, for a conditional
                    run, classes.png: one row of samples per class)

    .lock           held by the one process writing the folder (lock.py)

Every file is written atomically (npvae.files.atomic_write), so a crash, a kill or a full
disk never leaves half a file; temporary files a killed writer left are removed when the
next writer takes the folder. One process writes a folder at a time: a new run and a
resume hold the folder's lock for their whole life (`open_new_run`, `open_run`). A
checkpoint is written only when it is good (finite parameters, finite held-out loss), so
model.npz is always a state training can continue from. The settings are in config.py,
the checkpoint format in checkpoints.py, the data in rundata.py; `train_run` trains into
a folder, checkpointing every epoch.
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

from ..files import atomic_write, remove_temporaries
from ..io import SaveFile
from ..models.vae import VAE
from ..train import (FitState, History, TrainingDiverged, TrainingInterrupted, fit,
                     metric_value, what_is_not_finite)
from ..limits import LimitError
from .checkpoints import check_resumable, save_checkpoint
from .config import TrainConfig, UsageError, read_config_file
from .lock import RunLock
from .rundata import check_model_fits, conditional_data, fingerprint, load_run_data

CONFIG_FILE, METRICS_FILE, LAST_FILE, BEST_FILE, FIGURES_DIR = (
    "config.json", "metrics.csv", "model.npz", "best.npz", "figures")
RUN_FILES = (CONFIG_FILE, METRICS_FILE, LAST_FILE, BEST_FILE, FIGURES_DIR)


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


def open_new_run(out, dataset, root="runs"):
    """(folder, lock) of a new run, the lock already taken: `out`, or a fresh
    root/<dataset>-<time>.

    The folder is created if need be and locked before it is inspected, so of two runs
    started with the same --out one gets it and the other is refused. A folder holding
    any run file (a config, metrics, a checkpoint or figures) is refused: only --resume
    continues a run. UsageError names the problem.
    """
    if out is None:
        path = new_run_dir(root, dataset)
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path} is a file, not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create run folder {path}: {err.strerror}") from None
    _refuse_run_files(path)  # before locking, so a refused folder is left as it was
    lock = RunLock(path).acquire()
    try:
        _refuse_run_files(path, locked=True)  # again under the lock: a run started meanwhile
    except UsageError:
        lock.release()
        raise
    remove_temporaries(path)
    return path, lock


def _refuse_run_files(path, locked=False):
    held = [name for name in RUN_FILES if (path / name).exists()]
    if held:
        if not locked:
            RunLock(path).refuse_if_held()  # a run under way: say whose
        raise UsageError(f"{path} already holds run files ({', '.join(held)}); continue the run "
                         f"with --resume {path}, or choose another --out")


def open_run(run_dir):
    """The RunLock of an existing run folder, taken for a resume (UsageError if in use)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(f"--resume {path}: no such run folder")
    lock = RunLock(path).acquire()
    remove_temporaries(path)
    return lock


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
                  "val_kl", "val_active_units", "val_mutual_info", "seconds")
WHOLE_COLUMNS = ("epoch", "val_active_units")  # written as integers ("nan" when unknown)


def metrics_csv(history):
    """The CSV text of a History: a header, then one row per epoch."""
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    d = history.as_dict()
    for i in range(len(history.epoch)):
        writer.writerow([_cell(c, d[c][i]) for c in METRIC_COLUMNS])
    return buf.getvalue()


def _cell(column, value):
    if column in WHOLE_COLUMNS:
        return str(int(value)) if math.isfinite(value) else "nan"
    return f"{value:.6f}"


def write_metrics(run_dir, history):
    write_text(Path(run_dir) / METRICS_FILE, metrics_csv(history))


def read_metrics(path):
    """A History from a metrics.csv file (or a run folder holding one).

    A file written before the History had its LATER_COLUMNS (active units, I_q(x; z))
    reads with NaN in them; any other missing column is a UsageError.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        raise UsageError(f"no metrics file at {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    missing = [c for c in METRIC_COLUMNS if c not in header and c not in History.LATER_COLUMNS]
    if missing:
        raise UsageError(f"{path} lacks the column{'s' * (len(missing) > 1)} {', '.join(missing)}")
    columns = [c for c in METRIC_COLUMNS if c in header]
    history = History()
    for row in rows:
        history.append(**{c: metric_value(c, row[c]) for c in columns})
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
    if best:
        raise UsageError(f"--best picks a run folder's best.npz; {p} is a file")
    return p


def load_model(run_or_model, best=False):
    """(model, TrainConfig or None, run folder or None) for a run folder or a model file."""
    path = model_path(run_or_model, best)
    try:
        with SaveFile(path) as f:
            model = f.load_model()
            saved = f.read_json("extra/run_config", "run_config") if f.has_extra("run_config") else None
    except (ValueError, OSError) as err:
        raise UsageError(str(err)) from None
    config = None
    if saved is not None:
        config = TrainConfig.from_dict(saved, source=f"{path} (run_config)")
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


def fresh_model(config, data, dtype=np.float32):
    """The untrained model `config` describes for `data` (conditional: over its classes);
    UsageError when it is larger than npvae's parameter cap."""
    try:
        return config.build_model(data.input_dim, dtype=dtype, n_classes=data.n_classes)
    except LimitError as err:
        raise UsageError(f"the model of these settings (hidden {config.hidden}, latent_dim "
                         f"{config.latent_dim}, on {data.input_dim} inputs): {err}") from None


def training_inputs(config, checkpoint=None):
    """(data, model, data fingerprint) a run trains on, every check done before anything
    is written: the run's data (joined with the labels for a conditional run), and either
    a fresh model whose batch noise fits the byte cap, or the checkpoint's model once the
    checkpoint is known to continue on these data. `npvae train` and the sweep's tasks
    both start here."""
    from ..train import check_batch_memory, check_tcvae_batches

    data = load_run_data(config)
    if config.conditional:
        data = conditional_data(data, checkpoint.model.n_classes if checkpoint else None)
    data_fingerprint = fingerprint(data)
    if checkpoint is None:
        model = fresh_model(config, data)
        check_batch_memory(model, data.x_train.shape[0], config.batch_size, config.n_samples)
    else:
        check_resumable(checkpoint, data, data_fingerprint, config)
        model = checkpoint.model
    if config.objective == "tcvae":
        try:
            check_tcvae_batches(data.x_train.shape[0], config.batch_size)
        except ValueError as err:
            raise UsageError(f"--batch-size {config.batch_size}: {err}") from None
    return data, model, data_fingerprint


def draw_figures(model, data, history, run_dir, seed):
    """Draw a run's figures into RUN/figures; (paths written, notes on skipped ones)."""
    from .plots import draw_run_figures

    return draw_run_figures(model, data.x_val, data.y_val, data.image_shape, history,
                            Path(run_dir) / FIGURES_DIR, seed=seed)


def try_drawing_figures(model, data, history, run_dir, seed):
    """(notes, problem) of drawing a finished run's figures: problem is None, or one line
    saying why they could not be drawn (the system's words for a file error; else the
    error and the file holding its full report). The training and its checkpoints stand
    either way, so this never raises."""
    from .errors import describe, write_report

    try:
        _, notes = draw_figures(model, data, history, run_dir, seed)
    except OSError as err:
        return [], describe(err)
    except Exception as err:  # noqa: BLE001 -- the run itself succeeded
        return [], f"{type(err).__name__}: {err}; full report in {write_report(err)}"
    return notes, None


@dataclass
class Outcome:
    """How a training run ended: "finished", "interrupted" or "diverged"; `saved` says
    where model.npz stands: (epochs done, steps into the next epoch)."""

    status: str
    model: VAE
    history: History
    state: FitState
    saved: tuple
    error: Exception | None = None


def train_run(run_dir, config, data, checkpoint=None, model=None, progress=None, stop=None,
              data_fingerprint=None):
    """Train per `config` into `run_dir`, checkpointing every epoch; returns an Outcome.

    Starts from `checkpoint` (a resume), or from `model` (a fresh run's untrained model;
    built from `config` when None). A fresh run writes config.json and an epoch-0
    checkpoint first, so a last good checkpoint always exists. After each epoch:
    metrics.csv, model.npz, and best.npz when the validation loss improved. fit refuses
    to finish an epoch whose held-out loss or parameters are not finite, so no such
    epoch is ever written. A stop request (TrainingInterrupted) saves model.npz at the
    step where training stopped, if its parameters are finite; divergence writes nothing
    more, so model.npz stays the last good state. `data_fingerprint` (rundata.fingerprint
    of `data`, computed when None) goes into every checkpoint.
    """
    run_dir = Path(run_dir)
    model, optimizer, state = _start(run_dir, config, data, checkpoint, model)
    saver = _Saver(run_dir, model, optimizer, state, config,
                   data_fingerprint if data_fingerprint is not None else fingerprint(data))
    if checkpoint is None:
        saver.save(LAST_FILE)
    try:
        # Overflow on the way to a NaN loss is reported once, as TrainingDiverged.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit(model, data.x_train, data.x_val, epochs=config.epochs,
                batch_size=config.batch_size, optimizer=optimizer, beta=config.beta,
                seed=config.seed, n_samples=config.n_samples, clip_norm=config.clip_norm,
                objective=config.objective, free_bits=config.free_bits,
                warmup_epochs=config.warmup_epochs, alpha=config.alpha, gamma=config.gamma,
                callback=saver.after_epoch, state=state,
                progress=progress, stop=stop,
                # A conditional run's label columns survive dynamic binarisation: the draw
                # u in [0, 1) gives u < 1 and never u < 0.
                binarize=config.binarize == "dynamic")
    except TrainingInterrupted:
        broken = what_is_not_finite(model, optimizer)
        if broken:
            err = TrainingDiverged(state.epoch + 1, state.step, f"finite, but {broken}")
            return Outcome("diverged", model, state.history, state, saver.saved, err)
        saver.save(LAST_FILE)
        write_metrics(run_dir, state.history)
        return Outcome("interrupted", model, state.history, state, saver.saved)
    except TrainingDiverged as err:
        return Outcome("diverged", model, state.history, state, saver.saved, err)
    return Outcome("finished", model, state.history, state, saver.saved)


def _start(run_dir, config, data, checkpoint, model):
    """(model, optimizer, FitState) to train: new ones, or the checkpoint's with the
    learning rate of `config`. Writes config.json."""
    if checkpoint is None:
        if model is None:
            model = config.build_model(data.input_dim, n_classes=data.n_classes)
        optimizer = config.build_optimizer()
        state = FitState.start(config.seed)
    else:
        model, optimizer, state = checkpoint.model, checkpoint.optimizer, checkpoint.state
        optimizer.lr = config.lr
    check_model_fits(model, data, config.dataset)
    write_config(run_dir, config)
    return model, optimizer, state


class _Saver:
    """Writes a run's checkpoints; after each epoch the metrics, model.npz and, when the
    validation loss is the lowest so far, best.npz. `saved` is where model.npz stands."""

    def __init__(self, run_dir, model, optimizer, state, config, data_fingerprint):
        self.run_dir, self.model, self.optimizer = run_dir, model, optimizer
        self.state, self.config, self.fingerprint = state, config, data_fingerprint
        self.saved = (state.epoch, state.step)
        finite = [v for v in state.history.val_loss if math.isfinite(v)]
        self.best = min(finite) if finite else math.inf

    def save(self, name):
        save_checkpoint(self.run_dir / name, self.model, self.optimizer, self.state, self.config,
                        self.fingerprint)
        if name == LAST_FILE:
            self.saved = (self.state.epoch, self.state.step)

    def after_epoch(self, epoch, history):
        write_metrics(self.run_dir, history)
        self.save(LAST_FILE)
        if history.val_loss[-1] < self.best:
            self.best = history.val_loss[-1]
            self.save(BEST_FILE)
