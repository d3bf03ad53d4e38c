"""Datasets: the embedded digits set, generated sprites, MNIST / Fashion-MNIST from IDX files, and
a user's own arrays.

Every loader returns a :class:`Dataset`: images flattened to the rows of an ``(N, D)`` float array
in [0, 1], labels as ``int64`` with ``-1`` for an unknown label.

:func:`load_dataset` takes one of these names:

* ``"digits"``: the 8x8 digits that come with scikit-learn (1,797 images, grey levels 0..16,
  divided by 16). No file is needed; the split is a seeded permutation, stratified by class.
* ``"sprites"``: 12,168 binary 32x32 images of a square, an ellipse and a triangle at every
  combination of 4 scales, 6 orientations and 13 x 13 positions, drawn by
  :mod:`npvae.data.sprites` (no file is needed). The label is the shape; the level of every
  factor of every image is kept in :attr:`Dataset.factors_train` / ``factors_test``, with the
  factors' names and values, for measuring disentanglement. The split is a seeded permutation,
  stratified by shape.
* ``"mnist"`` or ``"fashion-mnist"``: the four standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  raw or ``.gz``). The folders searched, in order (:func:`dataset_dirs`):

  1. ``data_dir`` itself, then its ``<name>/`` sub-folder, when the argument is given;
  2. ``$NPVAE_DATA/<name>``;
  3. ``~/.cache/npvae/<name>``;
  4. ``<root>/<name>`` for each root in ``SYSTEM_DATA_DIRS`` (by default ``/usr/share/datasets``,
     where Debian's ``dataset-fashion-mnist`` package puts the four ``.gz`` files).

  The first folder with the t10k pair is used. If it has the train pair too, the split is the
  official 60,000 / 10,000 one and ``test_fraction`` does not apply. If it has the t10k pair alone
  (what downloading only the test set leaves behind), those 10,000 images are split *in order*:
  the last ``round(10000 * test_fraction)`` (2,000 by default) are held out, the rest train.
  If no folder has the files and ``download=True``, they are downloaded and checked (see
  :mod:`npvae.data.download`) into ``$NPVAE_DATA/<name>`` or ``~/.cache/npvae/<name>``.
* the path of a ``.npy``, ``.npz`` or ``.csv`` file holding the user's own data (see
  :mod:`npvae.data.arrays`).

Every data file is opened as a regular file only (a FIFO or a device is refused at once, never
waited on), and every array's size is checked against ``NPVAE_MAX_BYTES`` (see :mod:`npvae.limits`)
before it is allocated. Labels must be whole numbers from -1 up, in IDX files as in a user's.
When a loader had to decide something about the data, such as reading the first row of a CSV
file as a header, it says so in :attr:`Dataset.notes`.

Binarisation at load time: ``binarize="static"`` fixes one seeded Bernoulli draw per pixel,
``"threshold"`` keeps ``x > 0.5``. Dynamic binarisation, a fresh draw on every batch, is the
training loop's job: call :func:`binarize_batch` on each batch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .arrays import _as_labels, _flatten_images, _read_user_file, to_unit_range
from .download import download_dataset
from .idx import PathLike, find_idx_files, load_idx_pair
from .splits import _check_test_fraction, ordered_split, split_indices
from .sprites import render_sprites, sprite_factors

log = logging.getLogger(__name__)

KNOWN_DATASETS = ("digits", "mnist", "fashion-mnist", "sprites")
USER_ARRAY_SUFFIXES = (".npy", ".npz", ".csv")

# System-wide directories searched last (each holds <name>/ sub-directories).
SYSTEM_DATA_DIRS = [Path("/usr/share/datasets")]


# =========================================================================== the Dataset record


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train / test pair of flattened images in [0, 1] with int64 labels (-1 = unknown).

    A generated dataset (sprites) also carries the factors it was generated from; for every
    other dataset those fields keep their defaults (None and empty tuples).

    Attributes
    ----------
    x_train : array, shape (N_train, D)
        Training examples, floats in [0, 1].
    y_train : array of int64, shape (N_train,)
        Their labels, -1 where unknown.
    x_test : array, shape (N_test, D)
        Held-out examples.
    y_test : array of int64, shape (N_test,)
        Their labels.
    name : str
        The dataset's name ("digits", "mnist", ...) or the file's.
    image_shape : tuple of int or None
        The (H, W) an image row reshapes to, or None for flat user data.
    source : str or None
        Where the data came from (a directory, a file or scikit-learn).
    notes : tuple of str
        One-line remarks on how the data was read, for the user to see (e.g. that the
        first row of a CSV file was read as a header); empty when there is nothing to say.
    factors_train : array of int64, shape (N_train, K), or None
        The level index of each of the K factors of variation of each training image (row i
        describes x_train[i]); None when the factors are unknown.
    factors_test : array of int64, shape (N_test, K), or None
        The same for the held-out images.
    factor_names : tuple of str
        The K factors' names, e.g. ("shape", "scale", "orientation", "x", "y"); empty when unknown.
    factor_values : tuple of 1-D float arrays
        For each factor, the value of each level (level j of factor k has value
        factor_values[k][j]), e.g. scale multipliers, angles in radians, pixel positions.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    image_shape: Optional[Tuple[int, ...]] = None
    source: Optional[str] = None
    notes: tuple = ()
    factors_train: Optional[np.ndarray] = None
    factors_test: Optional[np.ndarray] = None
    factor_names: tuple = ()
    factor_values: tuple = ()

    @property
    def input_dim(self) -> int:
        """D, the length of one flattened image."""
        return int(self.x_train.shape[1])


# =========================================================================== where dataset folders are looked for


def dataset_dirs(name: str, data_dir: Optional[PathLike] = None) -> list:
    """The directories searched for dataset `name`, in order (see the module docstring)."""
    dirs = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        dirs += [d, d / name]
    env = os.environ.get("NPVAE_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs.append(Path.home() / ".cache" / "npvae" / name)
    dirs += [Path(root) / name for root in SYSTEM_DATA_DIRS]
    return dirs


def _usable(files: dict) -> bool:
    """A directory is usable when it has the t10k pair and either both train files or neither."""
    has_test = "test_images" in files and "test_labels" in files
    n_train = ("train_images" in files) + ("train_labels" in files)
    return has_test and n_train != 1


def locate_idx_dir(name: str, data_dir: Optional[PathLike] = None):
    """First searched directory with a usable set of IDX files: (directory, role -> path), or None."""
    for d in dataset_dirs(name, data_dir):
        files = find_idx_files(d)
        if _usable(files):
            return d, files
        if files:
            log.info("ignoring %s: incomplete set of IDX files %s", d, sorted(files))
    return None


# =========================================================================== loaders


def _load_user_arrays(path: Path, test_fraction: float, seed: int, dtype) -> Dataset:
    """Validate, scale and (when it has no test part) split a user's own array file."""
    source = str(path)
    x_train, y_train, x_test, y_test, notes = _read_user_file(path)
    x_train, image_shape = _flatten_images(x_train, source, "x_train")
    y_train = _as_labels(y_train, x_train.shape[0], source)
    if x_test is None:
        train_idx, test_idx = split_indices(x_train.shape[0], test_fraction, seed, y_train)
        x_train, x_test = x_train[train_idx], x_train[test_idx]
        y_train, y_test = y_train[train_idx], y_train[test_idx]
    else:
        x_test, test_shape = _flatten_images(x_test, source, "x_test")
        if x_test.shape[1] != x_train.shape[1]:
            raise ValueError(f"{source}: x_train has {x_train.shape[1]} features but x_test has {x_test.shape[1]}")
        if test_shape != image_shape:
            image_shape = None
        y_test = _as_labels(y_test, x_test.shape[0], source)
    x_train, x_test = to_unit_range([x_train, x_test], source, dtype)
    return Dataset(x_train, y_train, x_test, y_test, name=source, image_shape=image_shape, source=source,
                   notes=tuple(notes))


def _load_digits(test_fraction: float, seed: int, dtype) -> Dataset:
    """scikit-learn's 8x8 digits, pixel values 0..16 divided by 16, seeded stratified split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(dtype)  # (1797, 64) in [0, 1]
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = split_indices(len(y), test_fraction, seed, y)
    return Dataset(
        x[train_idx], y[train_idx], x[test_idx], y[test_idx],
        name="digits", image_shape=(8, 8), source="sklearn.datasets.load_digits",
    )


def _load_sprites(test_fraction: float, seed: int, dtype) -> Dataset:
    """The sprites grid (see npvae.data.sprites), labelled by shape, seeded split stratified by shape."""
    x, factors = render_sprites(dtype)  # (N, 1024), (N, K)
    names, values = sprite_factors()
    y = factors[:, names.index("shape")].copy()
    train_idx, test_idx = split_indices(len(y), test_fraction, seed, y)
    return Dataset(
        x[train_idx], y[train_idx], x[test_idx], y[test_idx],
        name="sprites", image_shape=(32, 32), source="generated by npvae.data.sprites",
        factors_train=factors[train_idx], factors_test=factors[test_idx],
        factor_names=names, factor_values=values,
    )


def _missing_files_message(name: str, data_dir) -> str:
    """Say where a dataset was looked for and how to get it."""
    dirs = "\n".join(f"  {d}" for d in dataset_dirs(name, data_dir))
    hint = " (or: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    return (
        f"no {name} IDX files (t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]) in:\n{dirs}\n"
        f"pass download=True to fetch them{hint}"
    )


def _load_idx_dataset(name, data_dir, test_fraction, dtype, download, mirrors) -> Dataset:
    """MNIST-style dataset from the first usable directory, downloading when none is."""
    found = locate_idx_dir(name, data_dir)
    if found is None:
        if not download:
            raise FileNotFoundError(_missing_files_message(name, data_dir))
        dest = download_dataset(name, mirrors=mirrors)
        found = dest, find_idx_files(dest)
    directory, files = found
    x_test, y_test, shape = load_idx_pair(files["test_images"], files["test_labels"], dtype)
    if "train_images" in files:
        x_train, y_train, train_shape = load_idx_pair(files["train_images"], files["train_labels"], dtype)
        if train_shape != shape:
            raise ValueError(f"{directory}: train images are {train_shape} but test images are {shape}")
    else:
        # Only the t10k set: split it in order, the last round(n * test_fraction) held out.
        tr, te = ordered_split(len(y_test), test_fraction)
        x_train, y_train = x_test[tr], y_test[tr]
        x_test, y_test = x_test[te], y_test[te]
    return Dataset(x_train, y_train, x_test, y_test, name=name, image_shape=shape, source=str(directory))


# =========================================================================== binarisation


def binarize_batch(x: np.ndarray, rng=None) -> np.ndarray:
    """A fresh Bernoulli draw per pixel: 1 with probability x, else 0 (same shape, float dtype).

    `rng` is an np.random.Generator (or a seed for one). Values of x must lie in [0, 1]; that is not
    re-checked here, since this runs on every training batch.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
    draw_dtype = out_dtype if out_dtype in (np.float32, np.float64) else np.float64
    u = rng.random(x.shape, dtype=draw_dtype)
    return (u < x).astype(out_dtype)


def binarize_threshold(x: np.ndarray) -> np.ndarray:
    """1 where x > 0.5, else 0, in x's dtype."""
    x = np.asarray(x)
    return (x > 0.5).astype(x.dtype)


def _binarize(ds: Dataset, mode: Optional[str], seed: int) -> Dataset:
    """Apply load-time binarisation to both parts of a dataset."""
    if mode is None:
        return ds
    if mode == "threshold":
        x_train, x_test = binarize_threshold(ds.x_train), binarize_threshold(ds.x_test)
    elif mode == "static":
        rng = np.random.default_rng([seed, 1])  # a stream apart from the split's
        x_train, x_test = binarize_batch(ds.x_train, rng), binarize_batch(ds.x_test, rng)
    elif mode == "dynamic":
        raise ValueError(
            "binarize='dynamic' is a per-batch operation: load with binarize=None and call "
            "binarize_batch(x, rng) on each training batch"
        )
    else:
        raise ValueError(f"binarize must be None, 'static' or 'threshold', got {mode!r}")
    return replace(ds, x_train=x_train, x_test=x_test)


# =========================================================================== entry points


def _canonical_name(name) -> Optional[str]:
    """'MNIST', 'fashion_mnist' ... -> a KNOWN_DATASETS entry, or None."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower().replace("_", "-")
    return key if key in KNOWN_DATASETS else None


def load_dataset(
    name: Union[str, "os.PathLike[str]"],
    data_dir: Optional[PathLike] = None,
    *,
    binarize: Optional[str] = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    dtype=np.float32,
    download: bool = True,
    mirrors: Optional[Sequence[str]] = None,
) -> Dataset:
    """Load a dataset by name ('digits', 'sprites', 'mnist', 'fashion-mnist') or a .npy / .npz / .csv path.

    * digits: seeded stratified split with `test_fraction`.
    * sprites: the generated shapes of npvae.data.sprites, labelled by shape, with the level of
      every factor in factors_train / factors_test; seeded split, stratified by shape.
    * mnist, fashion-mnist: IDX files found as the module docstring says; official split when the
      train files exist, else the t10k set split in order (last round(n * test_fraction) held out);
      downloaded from `mirrors` (default: $NPVAE_MIRRORS or MIRRORS[name]) when absent and `download`.
    * user files: .npy (one array), .npz (x_train [+ y_train, x_test, y_test], or one array), .csv
      (numbers, optional header row, which the returned Dataset's notes mention; a column named
      'label' holds labels). Arrays are flattened to (N, D), must be finite, and in [0, 1] or
      integers in [0, 255] (then divided by 255). Without an explicit test part they are split with
      `test_fraction` and `seed`. Unknown labels are -1.

    Parameters
    ----------
    name : str or os.PathLike
        "digits", "sprites", "mnist", "fashion-mnist" (underscores and capitals accepted), or
        the path of a .npy, .npz or .csv file.
    data_dir : str or os.PathLike, optional
        The folder searched first for MNIST-style IDX files (then its ``<name>/``).
    binarize : {None, "static", "threshold"}
        None keeps grey levels; "static" fixes one Bernoulli draw per pixel seeded by
        `seed`; "threshold" keeps x > 0.5. (Dynamic binarisation is fit's job.)
    seed : int
        Seeds the split of digits, sprites and user files, and the static binarisation.
    test_fraction : float
        The share held out when the data has no test part of its own.
    dtype : numpy floating dtype
        The dtype of x_train and x_test.
    download : bool
        Download MNIST / Fashion-MNIST when no folder holds the files.
    mirrors : sequence of str, optional
        Base URLs to download from (default: $NPVAE_MIRRORS or the built-in list).

    Returns
    -------
    Dataset
        x_train (N_train, D) and x_test (N_test, D) in [0, 1], y_train (N_train,) and
        y_test (N_test,) int64, the image shape (8x8 for digits, 32x32 for sprites, 28x28 for
        MNIST) and notes; for sprites also the factors (see Dataset).

    Raises
    ------
    ValueError
        For an unknown name, a bad setting, or data that is not finite, out of range or
        too large; the message names the problem.
    FileNotFoundError
        When the IDX files are nowhere and `download` is False.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    _check_test_fraction(test_fraction)
    if binarize not in (None, "static", "threshold", "dynamic"):
        raise ValueError(f"binarize must be None, 'static' or 'threshold', got {binarize!r}")

    key = _canonical_name(name)
    if key == "digits":
        ds = _load_digits(test_fraction, seed, dtype)
    elif key == "sprites":
        ds = _load_sprites(test_fraction, seed, dtype)
    elif key is not None:
        ds = _load_idx_dataset(key, data_dir, test_fraction, dtype, download, mirrors)
    elif Path(name).suffix.lower() in USER_ARRAY_SUFFIXES:
        ds = _load_user_arrays(Path(name).expanduser(), test_fraction, seed, dtype)
    else:
        raise ValueError(
            f"unknown dataset {name!r}: known names are {', '.join(KNOWN_DATASETS)}, "
            f"or a path to a {', '.join(USER_ARRAY_SUFFIXES)} file"
        )
    return _binarize(ds, binarize, seed)


def mnist_split(data_dir: Optional[PathLike] = None, n_train: int = 8000, *, dtype=np.float32, download: bool = True):
    """The MNIST t10k set split in order: (x_train, x_test, y_train, y_test).

    x_* are (n, 784) `dtype` in [0, 1], y_* int64; the first `n_train` images train, the rest test
    (8,000 / 2,000 by default). Looks in `data_dir`, then the usual lookup path (see the module
    docstring); downloads the two t10k files when none has them and `download`.
    """
    found = locate_idx_dir("mnist", data_dir)
    if found is None:
        if not download:
            raise FileNotFoundError(_missing_files_message("mnist", data_dir))
        dest = download_dataset("mnist", roles=("test_images", "test_labels"))
        found = dest, find_idx_files(dest)
    _, files = found
    x, y, _ = load_idx_pair(files["test_images"], files["test_labels"], dtype)
    if not 0 < n_train <= len(y):
        raise ValueError(f"n_train must be in [1, {len(y)}], got {n_train}")
    return x[:n_train], x[n_train:], y[:n_train], y[n_train:]
