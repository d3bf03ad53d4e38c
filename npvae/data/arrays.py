"""A user's own arrays: reading .npy, .npz and .csv files, and the checks every array goes through.

Every file is opened through :func:`npvae.files.open_regular`, so a FIFO, a device or a folder is
refused at once (and never waited on); every error is a one-line ValueError (or OSError) that
names the file.

* ``.npy``: one array, split later. Its header (format version 1.0 or 2.0) is read first: arrays
  of Python objects (which only pickle could read) and other non-numeric dtypes are refused, the
  declared size is checked against ``NPVAE_MAX_BYTES`` (counting 8 bytes an element, the float64
  copy the checks make) and against the file's length, all before any data is read. Fortran
  order is fine. A file that does not start with the .npy magic string is "not a .npy file".
* ``.npz``: a zip archive of ``.npy`` members ``x_train`` (and optionally ``y_train``, ``x_test``,
  ``y_test``), or of a single array. Members must be stored or deflated (as NumPy writes them).
  Each member's .npy header is read and checked as above, and the member's declared uncompressed
  size must be the header's length plus the data the header declares, before the data is
  inflated; a member is never inflated past its declared size, so a deflate bomb costs no more
  memory than the array it claims to be. A damaged or truncated archive is refused.
* ``.csv``: UTF-8 text (a byte-order mark is dropped), comma-separated, one row a line; blank lines
  are skipped and rows are numbered by their line. Each field of the first row is a number, a
  missing marker (empty, ``NA``, ``N/A``, ``NaN``, ``null``, in any case) or text. The first row is
  a header when it holds text and no number (the loader adds a note saying so), data when it holds
  no text, and an error when it mixes numbers and text. Every row must have as many fields as the
  first. In data rows a missing marker is NaN (later reported as a missing value) and text is an
  error naming its row and column. A header column named ``label`` holds the labels.

Images are flattened to rows of an ``(N, D)`` array (stacks ``(N, H, W, ...)`` keep their image
shape); an array needs at least one example and one feature. Values must be finite and either
already in [0, 1] or integers in [0, 255], which are divided by 255. Labels must be whole numbers
from -1 up; a missing one (NaN) becomes -1 (unknown). :func:`_as_labels` is the one place that
checks labels, for these files and for IDX label files alike.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from .. import limits, npyfile
from ..files import open_regular

FLOAT_BYTES = 8  # every array is checked as the float64 copy to_unit_range makes of it
UTF8_BOM = b"\xef\xbb\xbf"  # dropped from the start of a CSV file, as the utf-8-sig codec does
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null"})


# =========================================================================== checks shared by every loader


def _check_data_shape(shape: tuple, source: str, what: str = "the data") -> None:
    """ValueError unless `shape` is (N, D) or (N, H, W, ...) with N >= 1 examples and D >= 1 features."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"{source}: expected a 2-D array (N, D) or a stack of images, got shape {shape}")
    if math.prod(shape[1:]) == 0:
        raise ValueError(f"{source}: {what} of shape {shape} has 0 features")
    if shape[0] == 0:
        raise ValueError(f"{source}: {what} of shape {shape} has no examples")


def _flatten_images(x: np.ndarray, source: str, what: str = "the data"):
    """(N, D) stays; (N, H, W, ...) becomes (N, H*W*...) with image_shape (H, W, ...); see _check_data_shape."""
    x = np.asarray(x)
    _check_data_shape(x.shape, source, what)
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
        npyfile.require_real(p.dtype, source)
    as_float = [p.astype(np.float64, copy=False) for p in parts]
    n_nan = sum(int(np.isnan(p).sum()) for p in as_float)
    if n_nan:
        raise ValueError(f"{source}: {n_nan} NaN values (missing entries, such as empty fields or NA, count as NaN)")
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


def _as_labels(y, n: int, source: str, what: str = "labels") -> np.ndarray:
    """Labels as int64 of length n; None -> all -1 (unknown), NaN -> -1.

    The one check of labels: real numbers, whole, finite, from -1 up to int64's largest value.
    """
    if y is None:
        return np.full(n, -1, dtype=np.int64)
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{source}: {y.shape[0]} {what} for {n} examples")
    npyfile.require_real(y.dtype, f"{source}: {what}")
    if y.size == 0:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.integer):
        lo, hi = int(y.min()), int(y.max())
    else:
        y = y.astype(np.float64)
        y = np.where(np.isnan(y), -1.0, y)  # a missing label is an unknown label
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(f"{source}: {what} must be whole numbers; found {y[bad][0]:g}")
        lo, hi = float(y.min()), float(y.max())
    if lo < -1:
        raise ValueError(f"{source}: {what} must be -1 (unknown) or more; found {lo:g}")
    if hi >= 2**63:
        raise ValueError(f"{source}: {what} must be below 2**63; found {hi:g}")
    return y.astype(np.int64)


# =========================================================================== .npy files


def _check_npy_length(found: int, declared: int, source: str) -> None:
    """ValueError unless a .npy file holds exactly the data bytes its header declares."""
    if found < declared:
        raise ValueError(f"{source}: truncated: the .npy header declares {declared} bytes of data, found {found}")
    if found > declared:
        raise ValueError(f"{source}: {found - declared} trailing bytes after the {declared} bytes of data "
                         "the .npy header declares")


def _read_npy(path: Path):
    """The array of a .npy file: header checked, then the data read."""
    source = str(path)
    with open_regular(path) as fh:
        header = npyfile.read_header(fh, source, source, counted_itemsize=FLOAT_BYTES)
        _check_data_shape(header.shape, source, "the array")
        _check_npy_length(os.fstat(fh.fileno()).st_size - header.length, header.nbytes, source)
        return npyfile.read_data(fh, header, source)


# =========================================================================== .npz archives


def _read_member(archive, info, source: str, x_like: bool) -> np.ndarray:
    """One member's array: method, header and declared size checked before its data is inflated."""
    header = npyfile.member_header(archive, info, source, counted_itemsize=FLOAT_BYTES)
    if x_like:
        _check_data_shape(header.shape, source, npyfile.member_key(info.filename))
    return npyfile.read_member(archive, info, header, source)


def _read_npz(path: Path):
    """(x_train, y_train, x_test, y_test) from an .npz; missing parts are None."""
    source = str(path)
    with open_regular(path) as fh, npyfile.open_zip(fh, source) as archive:
        members = {npyfile.member_key(i.filename): i for i in archive.infolist() if not i.is_dir()}
        keys = list(members)
        if "x_train" in keys:
            if "y_test" in keys and "x_test" not in keys:
                raise ValueError(f"{source}: has y_test but no x_test")
            parts = []
            for key in ("x_train", "y_train", "x_test", "y_test"):
                info = members.get(key)
                parts.append(None if info is None else _read_member(archive, info, source, key.startswith("x")))
            return tuple(parts)
        if len(keys) == 1:
            return _read_member(archive, members[keys[0]], source, True), None, None, None
    raise ValueError(
        f"{source}: expected arrays x_train (and optionally y_train, x_test, y_test) or a single array; "
        f"found {keys}"
    )


# =========================================================================== .csv tables


def _field_kind(text: str) -> str:
    """'missing' (empty, NA, N/A, NaN, null in any case), 'number' (float() accepts it) or 'text'."""
    field = text.strip()
    if field.lower() in MISSING_MARKERS:
        return "missing"
    try:
        float(field)
    except ValueError:
        return "text"
    return "number"


def _first_row_is_header(fields: list, source: str) -> bool:
    """True for a row of names (text, no number), False for data (no text); ValueError for a mix."""
    kinds = [_field_kind(f) for f in fields]
    if "text" not in kinds:
        return False
    if "number" not in kinds:
        return True
    raise ValueError(f"{source}: row 1 mixes numbers and text ({_show_fields(fields)}): a header row holds "
                     "only names, a data row only numbers and missing markers")


def _show_fields(fields: list, most: int = 3) -> str:
    """The first few fields joined by commas, '...' when there are more."""
    shown = [f.strip() for f in fields[:most]]
    return ", ".join(shown + (["..."] if len(fields) > most else []))


def _csv_text(path: Path, source: str) -> str:
    """The decoded text of a CSV file (size checked first, BOM dropped); ValueError unless UTF-8."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        limits.check_bytes(size, f"{source}: reading a CSV file of {size:,} bytes")
        raw = fh.read(size)
    bom = len(UTF8_BOM) if raw.startswith(UTF8_BOM) else 0
    try:
        return str(memoryview(raw)[bom:], "utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        raise ValueError(f"{source}: not UTF-8 text (byte 0x{raw[at]:02X} at offset {at})") from None


def _csv_rows(text: str, source: str):
    """(line number, fields) for each non-blank row of the text; ValueError naming a malformed row."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"{source}: row {reader.line_num}: {npyfile.one_line(exc)}") from None
        if fields and not (len(fields) == 1 and not fields[0].strip()):
            yield reader.line_num, fields


def _parse_number(text: str, source: str, row: int, column: int) -> float:
    """float of a data field; NaN for a missing marker; ValueError naming row and column for text."""
    try:
        return float(text)
    except ValueError:
        if text.strip().lower() in MISSING_MARKERS:
            return math.nan
        raise ValueError(f"{source}: row {row}, column {column}: {text.strip()!r} is not a number") from None


def _label_column(names: list, source: str) -> Optional[int]:
    """Index of the header column named 'label' (any case), None without one; two is an error."""
    found = [i for i, name in enumerate(names) if name.strip().lower() == "label"]
    if len(found) > 1:
        raise ValueError(f"{source}: {len(found)} columns are named label (columns "
                         f"{', '.join(str(i + 1) for i in found)})")
    return found[0] if found else None


def _read_csv(path: Path):
    """(x, y, notes) from a CSV file as the module docstring says; y from a 'label' column, else None."""
    source = str(path)
    text = _csv_text(path, source)
    rows = _csv_rows(text, source)
    first = next(rows, None)
    if first is None:
        raise ValueError(f"{source}: empty CSV file")
    width = len(first[1])
    has_header = _first_row_is_header(first[1], source)
    n_rows = 0 if has_header else 1
    for line, fields in rows:  # first pass: shape and field counts, nothing stored
        if len(fields) != width:
            raise ValueError(f"{source}: row {line} has {len(fields)} fields, but row 1 has {width}")
        n_rows += 1
    if n_rows == 0:
        raise ValueError(f"{source}: no data rows")
    label = _label_column(first[1], source) if has_header else None
    n_features = width - (label is not None)
    _check_data_shape((n_rows, n_features), source, "the table")
    limits.check_array((n_rows, width), FLOAT_BYTES, f"{source}: a table of {n_rows} rows and {width} columns")
    table = np.empty((n_rows, width), dtype=np.float64)
    data_rows = _csv_rows(text, source)
    if has_header:
        next(data_rows)
    for i, (line, fields) in enumerate(data_rows):  # second pass: the numbers
        try:
            table[i] = fields  # NumPy parses the strings as float() does
        except ValueError:  # a missing marker or text: field by field
            table[i] = [_parse_number(f, source, line, j + 1) for j, f in enumerate(fields)]
    notes = ()
    if has_header:
        notes = (f"{source}: row 1 read as a header ({_show_fields(first[1])}), not data",)
    if label is None:
        return table, None, notes
    return np.delete(table, label, axis=1), table[:, label], notes


# =========================================================================== entry point


class UserArrays(NamedTuple):
    """The parts read from a user's file (missing ones None) and notes for the user."""

    x_train: np.ndarray
    y_train: Optional[np.ndarray] = None
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    notes: tuple = ()


def _read_user_file(path: Path) -> UserArrays:
    """The parts of a .npy, .npz or .csv file (told apart by suffix; anything else is read as CSV)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return UserArrays(_read_npy(path))
    if suffix == ".npz":
        return UserArrays(*_read_npz(path))
    x, y, notes = _read_csv(path)
    return UserArrays(x, y, notes=notes)
