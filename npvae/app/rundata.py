"""The data of a run: its dataset loaded and split, binarised as configured, and for a
conditional run joined with the labels.

A conditional run (``conditional: true``) trains a ConditionalVAE. Its data stay a plain
RunData until `conditional_data` joins every example with its one-hot label, [x | onehot(y)],
the array the model reads; the number of classes comes from the labels (largest + 1) for a
new run and from the saved model otherwise.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..limits import LimitError, check_array
from ..models.conditional import one_hot
from .config import UsageError


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
    notes: tuple = ()  # what the loader said about the file (a skipped header row, ...)
    factors_val: np.ndarray | None = None  # (N_val, K) factor levels of generated data (sprites)
    factor_names: tuple = ()

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
    return RunData(ds.x_train, x_val, ds.y_test, shape, ds.name, y_train=ds.y_train,
                   notes=tuple(getattr(ds, "notes", ())), factors_val=ds.factors_test,
                   factor_names=tuple(ds.factor_names))


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
                         f"example labelled (digits, mnist, fashion-mnist, sprites, or a file with labels)")
    largest = max(int(y.max()) for y in parts.values() if y.size)
    if n_classes is None:
        n_classes = largest + 1
        for part, x in (("training", data.x_train), ("held-out", data.x_val)):
            try:
                check_array((x.shape[0], x.shape[1] + n_classes), x.dtype.itemsize,
                            f"dataset {data.name!r}: its largest label is {largest}, so the "
                            f"{part} examples joined with {n_classes:,} one-hot columns")
            except LimitError as err:
                raise UsageError(str(err)) from None
    elif largest >= n_classes:
        raise UsageError(f"dataset {data.name!r} has label {largest}, but the model knows "
                         f"only the classes 0..{n_classes - 1}")

    def join(x, y):
        return np.concatenate([x, one_hot(y, n_classes, dtype=x.dtype)], axis=1)

    return RunData(join(data.x_train, data.y_train), join(data.x_val, data.y_val), data.y_val,
                   data.image_shape, data.name, y_train=data.y_train, n_classes=n_classes,
                   notes=data.notes, factors_val=data.factors_val, factor_names=data.factor_names)


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


def fingerprint(data):
    """What identifies a run's training data: the shapes of the training and held-out
    arrays and a SHA-256 over their bytes (labels included, for a conditional run, since
    they are columns of the arrays). A checkpoint keeps it, so `--resume` on data that
    changed since is refused instead of training on without a word."""
    digest = hashlib.sha256()
    for x in (data.x_train, data.x_val):
        digest.update(str((x.shape, x.dtype.str)).encode())
        digest.update(np.ascontiguousarray(x).data)
    return {"train": list(data.x_train.shape), "held_out": list(data.x_val.shape),
            "sha256": digest.hexdigest()}


def describe_fingerprint(fp):
    """A fingerprint in words: 1,437 x 64 training and 360 held-out rows (sha256 1a2b3c4d)."""
    (n, d), (n_val, _) = fp["train"], fp["held_out"]
    return f"{n:,} x {d} training and {n_val:,} held-out rows (sha256 {fp['sha256'][:12]})"
