"""Run folders: the training settings, per-epoch metrics, checkpoints and figures of one run.

A run folder holds

    config.json     the complete training settings (TrainConfig), enough to redo the run
    metrics.csv     one row per finished epoch (History columns)
    model.npz       the latest checkpoint: end of the last finished epoch, or the step
                    where Ctrl-C stopped training
    best.npz        the checkpoint of the epoch with the lowest validation loss
    figures/*.png   loss curves, reconstructions, samples, latent space, interpolation
                    (and, for a conditional run, classes.png: one row of samples per class)

A checkpoint is an ordinary npvae save file (npvae.load reads it) whose extra arrays carry
what resuming needs: the optimizer's state_dict (keys ``optim.<name>``), the FitState
(``fit.epoch``, ``fit.step``, ``fit.order``, ``fit.sums``, ``fit.seconds``, ``fit.rng``: the
Generator's state as JSON, ``fit.history``: the History as JSON) and ``run_config`` (the
TrainConfig as JSON). Every file is written atomically (io.atomic_write), so a crash or
Ctrl-C never leaves half a file.

A conditional run (``conditional: true``) trains a ConditionalVAE. Its data stay a plain
RunData until `conditional_data` joins every example with its one-hot label, [x | onehot(y)],
the array the model reads; the number of classes comes from the labels (largest + 1) for a
new run and from the saved model otherwise.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..models.conditional import ConditionalVAE, one_hot
from ..io import atomic_write, load_into, model_from_config, read_archive, save
from ..models.vae import VAE
from ..optim import Adam
from ..settings import SettingError, check_combination, check_settings
from ..train import FitState, History

CONFIG_FILE, METRICS_FILE, LAST_FILE, BEST_FILE, FIGURES_DIR = (
    "config.json", "metrics.csv", "model.npz", "best.npz", "figures")


class UsageError(ValueError):
    """A problem the user can fix (a bad setting, a missing run folder); one-line message."""


# ------------------------------------------------------------------ training settings


@dataclass
class TrainConfig:
    """Every setting of `npvae train`; the defaults train on digits in seconds.

    latent_dim 2 is the default because it is the one size whose latent space can be drawn
    as it is (the manifold and the scatter figures); larger sizes reconstruct better.
    lr 3e-3 with 100 epochs of batch 64 was the best of a few settings tried on digits; on
    larger data sets 1e-3 is the safer start.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    binarize: str = "none"
    test_fraction: float = 0.2
    hidden: list = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    latent_dim: int = 2
    beta: float = 1.0
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    clip_norm: float | None = None
    n_samples: int = 1
    objective: str = "elbo"
    free_bits: float = 0.0
    warmup_epochs: int = 0
    seed: int = 0
    backend: str | None = None
    conditional: bool = False

    @classmethod
    def keys(cls):
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, d, source="config"):
        """A checked TrainConfig from a dict; unknown keys and bad values raise UsageError."""
        if not isinstance(d, dict):
            raise UsageError(f"{source}: expected a JSON object of settings, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.keys()))
        if unknown:
            raise UsageError(f"{source}: unknown setting {unknown[0]!r} "
                             f"(known: {', '.join(cls.keys())})")
        cfg = cls(**d)
        cfg.check(source)
        return cfg

    def to_dict(self):
        return asdict(self)

    def check(self, source="config"):
        """Normalise and validate every value in place (each through npvae.settings, then
        the rules between them); raise UsageError on a bad one."""
        try:
            values = check_settings(self.to_dict(), source)
            check_combination(values["objective"], values["beta"], values["free_bits"],
                              values["warmup_epochs"], source)
        except SettingError as err:
            raise UsageError(str(err)) from None
        for key, value in values.items():
            setattr(self, key, value)
        return self

    def build_model(self, input_dim, dtype=np.float32, n_classes=None):
        """The untrained model these settings describe (weights drawn from `seed`): a VAE,
        or with `conditional` a ConditionalVAE over `n_classes` labels."""
        arch = dict(latent_dim=self.latent_dim, hidden=tuple(self.hidden),
                    activation=self.activation, likelihood=self.likelihood, dtype=dtype,
                    seed=self.seed)
        if self.conditional:
            if n_classes is None:
                raise ValueError("a conditional model needs n_classes")
            return ConditionalVAE(input_dim, n_classes, **arch)
        return VAE(input_dim, **arch)

    def build_optimizer(self):
        return Adam(lr=self.lr)


def read_config_file(path):
    """The dict in a JSON settings file; UsageError for a missing or malformed file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON ({err})") from None


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


# ------------------------------------------------------------------ checkpoints


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


# ------------------------------------------------------------------ data


@dataclass
class RunData:
    """Training and held-out arrays for a run, plus what the figures need."""

    x_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    image_shape: tuple | None
    name: str
    y_train: np.ndarray | None = None
    n_classes: int | None = None  # set when x_train, x_val are joined [x | onehot(y)]

    @property
    def input_dim(self):
        """Columns of data proper (without the one-hot label columns of a conditional run)."""
        return self.x_val.shape[1] - (self.n_classes or 0)


def load_run_data(config):
    """Load the run's dataset (split seed fixed at 0, so every seed sees the same test set).

    binarize "static" / "threshold" happen at load time; "dynamic" leaves the training data
    grey (fit draws a fresh binary batch each step) and binarises the held-out set once,
    with a fixed seed, so validation numbers compare between epochs and runs.
    """
    from ..data import binarize_batch, load_dataset

    mode = None if config.binarize in ("none", "dynamic") else config.binarize
    try:
        ds = load_dataset(config.dataset, config.data_dir, binarize=mode, seed=0,
                          test_fraction=config.test_fraction)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise UsageError(f"cannot load dataset {config.dataset!r}: {err}") from None
    x_val = ds.x_test
    if config.binarize == "dynamic":
        x_val = binarize_batch(x_val, np.random.default_rng([0, 2]))
    if x_val.shape[0] == 0:
        raise UsageError(f"dataset {config.dataset!r} has no held-out examples "
                         f"(test_fraction is {config.test_fraction})")
    shape = tuple(ds.image_shape) if ds.image_shape is not None else None
    return RunData(ds.x_train, x_val, ds.y_test, shape, ds.name, y_train=ds.y_train)


def conditional_data(data, n_classes=None):
    """`data` with every example joined to its one-hot label: [x | onehot(y)], (N, D + C).

    n_classes: the model's C; None counts the classes from the labels (largest + 1). A
    UsageError names the problem when labels are unknown (-1) or outside [0, C).
    """
    if data.n_classes is not None:
        return data
    parts = {"training": data.y_train, "held-out": data.y_val}
    for part, y in parts.items():
        unknown = None if y is None else int(np.sum(y < 0))
        if y is None or (unknown and unknown == y.size):
            problem = "has no labels (every label is unknown, -1)"
        elif unknown:
            problem = f"has {unknown} of {y.size} {part} examples without a label (-1)"
        else:
            continue
        raise UsageError(f"dataset {data.name!r} {problem}: a conditional VAE needs every "
                         f"example labelled (digits, mnist, fashion-mnist, or a file with labels)")
    largest = max(int(y.max()) for y in parts.values() if y.size)
    if n_classes is None:
        n_classes = largest + 1
    elif largest >= n_classes:
        raise UsageError(f"dataset {data.name!r} has label {largest}, but the model knows "
                         f"only the classes 0..{n_classes - 1}")

    def join(x, y):
        return np.concatenate([x, one_hot(y, n_classes, dtype=x.dtype)], axis=1)

    return RunData(join(data.x_train, data.y_train), join(data.x_val, data.y_val), data.y_val,
                   data.image_shape, data.name, y_train=data.y_train, n_classes=n_classes)


def check_model_fits(model, data, dataset):
    """UsageError unless the model reads the data's columns (and, conditional, its classes)."""
    model_classes = getattr(model, "n_classes", None)
    if model.input_dim != data.input_dim:
        raise UsageError(f"the model takes {model.input_dim} inputs but dataset "
                         f"{dataset!r} has {data.input_dim}")
    if model_classes != data.n_classes:
        model_kind = f"conditioned on {model_classes} classes" if model_classes else "unconditional"
        data_kind = f"joined with {data.n_classes} classes" if data.n_classes else "unlabelled"
        raise UsageError(f"the model is {model_kind} but the data are {data_kind}")


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
    from ..train import TrainingDiverged, TrainingInterrupted, fit

    run_dir = Path(run_dir)
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
    finite = [v for v in state.history.val_loss if math.isfinite(v)]
    best = [min(finite) if finite else math.inf]

    def after_epoch(epoch, history):
        write_metrics(run_dir, history)
        save_checkpoint(run_dir / LAST_FILE, model, optimizer, state, config)
        if history.val_loss[-1] < best[0]:
            best[0] = history.val_loss[-1]
            save_checkpoint(run_dir / BEST_FILE, model, optimizer, state, config)

    try:
        # Overflow on the way to a NaN loss is reported once, as TrainingDiverged.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit(model, data.x_train, data.x_val, epochs=config.epochs,
                batch_size=config.batch_size, optimizer=optimizer, beta=config.beta,
                seed=config.seed, n_samples=config.n_samples, clip_norm=config.clip_norm,
                objective=config.objective, free_bits=config.free_bits,
                warmup_epochs=config.warmup_epochs, callback=after_epoch, state=state, progress=progress, stop=stop,
                # A conditional run's label columns survive dynamic binarisation: the draw
                # u in [0, 1) gives u < 1 and never u < 0.
                binarize=config.binarize == "dynamic")
    except TrainingInterrupted:
        save_checkpoint(run_dir / LAST_FILE, model, optimizer, state, config)
        write_metrics(run_dir, state.history)
        return Outcome("interrupted", model, state.history, state)
    except TrainingDiverged as err:
        return Outcome("diverged", model, state.history, state, err)
    return Outcome("finished", model, state.history, state)
