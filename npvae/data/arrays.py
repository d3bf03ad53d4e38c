"""A user's own arrays: reading .npy, .npz and .csv files, and the checks every array goes through.

* ``.npy``: one array, split later.
* ``.npz``: arrays ``x_train`` (and optionally ``y_train``, ``x_test``, ``y_test``), or a single array.
* ``.csv``: numbers, with an optional header line; a column named ``label`` holds the labels.

Images are flattened to rows of an ``(N, D)`` array (stacks ``(N, H, W, ...)`` keep their image
shape); values must be finite and either already in [0, 1] or integers in [0, 255], which are
divided by 255. Labels must be whole numbers; a missing one becomes -1 (unknown).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _flatten_images(x: np.ndarray, source: str):
    """(N, D) stays; (N, H, W, ...) becomes (N, H*W*...) with image_shape (H, W, ...); 1-D is an error."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{source}: expected a 2-D array (N, D) or a stack of images, got shape {x.shape}")
    if x.ndim == 2:
        return x, None
    return x.reshape(x.shape[0], -1), tuple(int(s) for s in x.shape[1:])


def to_unit_range(parts: Sequence[np.ndarray], source: str, dtype=np.float32) -> list:
    """Validate arrays jointly and return them as `dtype` in [0, 1].

    Rejects non-numeric data, NaNs and infinities (the message gives the count). Values already in
    [0, 1] are kept; integer values in [0, 255] are divided by 255; any other range is an error
    that names the range found.
    """
    parts = [np.asarray(p) for p in parts]
    for p in parts:
        if not (np.issubdtype(p.dtype, np.number) or p.dtype == np.bool_) or np.iscomplexobj(p):
            raise ValueError(f"{source}: expected real numbers, got dtype {p.dtype}")
    as_float = [p.astype(np.float64, copy=False) for p in parts]
    n_nan = sum(int(np.isnan(p).sum()) for p in as_float)
    if n_nan:
        raise ValueError(f"{source}: {n_nan} NaN values (missing or non-numeric entries count as NaN)")
    n_inf = sum(int(np.isinf(p).sum()) for p in as_float)
    if n_inf:
        raise ValueError(f"{source}: {n_inf} infinite values")
    nonempty = [p for p in as_float if p.size]
    lo = min((float(p.min()) for p in nonempty), default=0.0)
    hi = max((float(p.max()) for p in nonempty), default=0.0)
    if lo >= 0.0 and hi <= 1.0:
        return [p.astype(dtype) for p in as_float]
    integer_valued = all(np.array_equal(p, np.round(p)) for p in nonempty)
    if lo >= 0.0 and hi <= 255.0 and integer_valued:
        return [(p / 255.0).astype(dtype) for p in as_float]
    raise ValueError(
        f"{source}: values range over [{lo:g}, {hi:g}]; expected values in [0, 1], "
        "or integers in [0, 255] (which are divided by 255)"
    )


def _as_labels(y, n: int, source: str) -> np.ndarray:
    """Labels as int64 of length n; None -> all -1 (unknown). Must be whole numbers."""
    if y is None:
        return np.full(n, -1, dtype=np.int64)
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{source}: {y.shape[0]} labels for {n} examples")
    if not np.issubdtype(y.dtype, np.integer):
        yf = y.astype(np.float64)
        yf = np.where(np.isnan(yf), -1.0, yf)  # a missing label is an unknown label
        if not np.array_equal(yf, np.round(yf)):
            raise ValueError(f"{source}: labels must be whole numbers")
        y = yf
    return y.astype(np.int64)


def _read_npz(path: Path):
    """(x_train, y_train, x_test, y_test) from an .npz; missing parts are None."""
    source = str(path)
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if "x_train" in keys:
            get = lambda k: z[k] if k in keys else None  # noqa: E731
            if "y_test" in keys and "x_test" not in keys:
                raise ValueError(f"{source}: has y_test but no x_test")
            return get("x_train"), get("y_train"), get("x_test"), get("y_test")
        if len(keys) == 1:
            return z[keys[0]], None, None, None
    raise ValueError(
        f"{source}: expected arrays x_train (and optionally y_train, x_test, y_test) or a single array; "
        f"found {keys}"
    )


def _is_number(text: str) -> bool:
    """True when float() accepts the text (so 'nan' and '' differ: '' is not a number)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path):
    """(x, y) from a numeric CSV with an optional header line; y comes from a column named 'label'."""
    source = str(path)
    with open(path, "r", encoding="utf-8") as fh:
        first = fh.readline()
    if not first.strip():
        raise ValueError(f"{source}: empty CSV file")
    fields = [f.strip().strip('"').strip("'") for f in first.rstrip("\r\n").split(",")]
    has_header = not all(_is_number(f) for f in fields)
    try:
        table = np.genfromtxt(path, delimiter=",", skip_header=1 if has_header else 0, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{source}: not a rectangular numeric CSV ({exc})") from None
    if table.size == 0:
        raise ValueError(f"{source}: no data rows")
    y = None
    if has_header:
        lowered = [f.lower() for f in fields]
        if "label" in lowered:
            col = lowered.index("label")
            y = table[:, col]
            table = np.delete(table, col, axis=1)
    return table, y


def _read_user_file(path: Path):
    """(x_train, y_train, x_test, y_test) from a .npy, .npz or .csv file; missing parts are None."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None, None, None
    if suffix == ".npz":
        return _read_npz(path)
    x, y = _read_csv(path)
    return x, y, None, None
