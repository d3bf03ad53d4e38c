"""Datasets: the embedded digits set, MNIST / Fashion-MNIST from IDX files, and a user's own arrays.

Every loader returns a :class:`Dataset` whose images are flattened to rows of an ``(N, D)``
float array scaled to [0, 1] and whose labels are ``int64`` (``-1`` where a label is unknown).

Names understood by :func:`load_dataset`:

* ``"digits"`` -- scikit-learn's 8x8 digits (1,797 images, pixel values 0..16, divided by 16).
  Shipped with scikit-learn, so it needs no file; split by a seeded, class-stratified permutation.
* ``"mnist"`` and ``"fashion-mnist"`` -- the four standard IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``; each raw or ``.gz``), looked up in this order:

  1. the ``data_dir`` argument (or its ``<name>/`` sub-directory),
  2. ``$NPVAE_DATA/<name>``,
  3. ``~/.cache/npvae/<name>``,
  4. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` package installs the four
     ``.gz`` files in ``/usr/share/datasets/fashion-mnist/``).

  The first directory holding the t10k pair wins. When it also holds the train pair, the official
  60,000 / 10,000 split is used and ``test_fraction`` is ignored. When it holds only the t10k pair
  (as a download of the test set alone leaves it), the 10,000 test images are split *in order*: the last
  ``round(10000 * test_fraction)`` images (2,000 by default) are held out, the first 8,000 train.
  When no directory has the files and ``download=True``, they are fetched from the public mirrors
  (``MIRRORS``), checked against the canonical SHA-256 (``SHA256``), and stored in
  ``$NPVAE_DATA/<name>`` or ``~/.cache/npvae/<name>``.
* a path to a ``.npy``, ``.npz`` or ``.csv`` file of the user's own data (see :func:`load_dataset`).

Binarisation: ``binarize="static"`` draws one seeded Bernoulli sample per pixel at load time;
``"threshold"`` keeps ``x > 0.5``. Dynamic binarisation belongs in the training loop: call
:func:`binarize_batch` on every batch.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import secrets
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

KNOWN_DATASETS = ("digits", "mnist", "fashion-mnist")
USER_ARRAY_SUFFIXES = (".npy", ".npz", ".csv")

# The four files of an MNIST-style dataset, by role.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX element types: the third byte of the magic number -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Base URLs tried in order for each dataset; a file's URL is base + "/" + file name.
# Override per call (load_dataset(..., mirrors=[...])), process-wide by editing this dict, or with the
# environment variable NPVAE_MIRRORS (base URLs separated by commas or whitespace; "{name}" in a base
# URL is replaced by the dataset name).
MIRRORS = {
    "mnist": [
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# Canonical SHA-256 of each published .gz file, as listed in pytorch/vision,
# torchvision/prototype/datasets/_builtin/mnist.py (classes MNIST and FashionMNIST).
# * MNIST t10k-images / t10k-labels: also recomputed here from the real copies in
#   real copies of the files (their MD5s, 9fb629c4... and ec29112d..., are the ones LeCun's page lists).
# * MNIST train-*: taken from that listing only; no copy on this machine to recompute from.
# * Fashion-MNIST: taken from that listing, which agrees with several other public listings; not
#   recomputable here. Debian's dataset-fashion-mnist re-compressed the files (its .gz headers drop the
#   original file name and carry a 2020 timestamp), so the Debian copies do NOT match these hashes even
#   though they hold the same images. Checksums are only checked on download, never on local files.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# System-wide directories searched last (each holds <name>/ sub-directories).
SYSTEM_DATA_DIRS = [Path("/usr/share/datasets")]

DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a mirror is given up
DOWNLOAD_CHUNK = 1 << 16

GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_DIMS = 32  # NumPy 1.x's limit; real IDX files have 1 to 4. More means "not an IDX file".


class DownloadError(OSError):
    """No mirror delivered a file (network errors, HTTP errors, connections closed early)."""


# =========================================================================== IDX files


def _decompress_if_gzip(raw: bytes, source: str) -> bytes:
    """Return the IDX bytes of a file's content: gunzipped when it starts with the gzip magic 1f 8b."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{source}: corrupt or truncated gzip stream ({exc})") from None


def _payload_kind(ndim: int) -> str:
    """Words for an IDX payload in error messages: images have 3 dims, labels 1."""
    return {1: "label data", 3: "image data"}.get(ndim, "data")


def parse_idx(buf: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian array of the declared shape.

    Layout: magic (0, 0, dtype code, ndim), then ndim big-endian uint32 sizes, then
    prod(sizes) big-endian elements and nothing else. `source` names the file in error messages.
    """
    if len(buf) < 4:
        raise ValueError(f"{source}: truncated: {len(buf)} bytes is too short for an IDX header")
    magic = int.from_bytes(buf[:4], "big")
    zero0, zero1, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise ValueError(f"{source}: wrong magic number 0x{magic:08X}, not an IDX file")
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise ValueError(f"{source}: wrong magic number 0x{magic:08X}, not an IDX file ({ndim} dimensions)")

    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise ValueError(
            f"{source}: truncated: the header declares {ndim} dimensions "
            f"({header_len} header bytes) but the file has only {len(buf)} bytes"
        )
    dims = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # exact, no overflow
    found = len(buf) - header_len
    kind = _payload_kind(ndim)
    if found < expected:
        raise ValueError(f"{source}: truncated: expected {expected} bytes of {kind}, found {found}")
    if found > expected:
        raise ValueError(
            f"{source}: {found - expected} trailing bytes after the expected {expected} bytes of {kind} "
            f"(dims {dims})"
        )
    flat = np.frombuffer(buf, dtype=dtype, offset=header_len, count=expected // dtype.itemsize)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip (told apart by the gzip magic bytes, not the name).

    Raises ValueError naming the file for a wrong magic number, a truncated header or payload,
    trailing bytes, or a corrupt / truncated gzip stream.
    """
    source = str(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    return parse_idx(_decompress_if_gzip(raw, source), source)


# =========================================================================== the Dataset record


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train / test pair of flattened images in [0, 1] with int64 labels (-1 = unknown).

    x_train: (N_train, D), x_test: (N_test, D) float arrays; y_train: (N_train,), y_test: (N_test,).
    image_shape is the (H, W) an image row reshapes to, or None for flat user data.
    source says where the data came from (a directory, a file or scikit-learn).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    image_shape: Optional[Tuple[int, ...]] = None
    source: Optional[str] = None

    @property
    def input_dim(self) -> int:
        """D, the length of one flattened image."""
        return int(self.x_train.shape[1])


# =========================================================================== splits


def _check_test_fraction(test_fraction: float) -> float:
    """Validate 0 <= test_fraction < 1."""
    tf = float(test_fraction)
    if not 0.0 <= tf < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    return tf


def _stratified_counts(counts: np.ndarray, test_fraction: float, n_test: int) -> np.ndarray:
    """How many of each class to hold out so that the total is exactly n_test.

    Largest-remainder rounding: every class gets floor(count * test_fraction); the n_test - sum
    left over go one each to the classes with the largest fractional parts (ties: first class first).
    """
    quota = counts * test_fraction  # (K,)
    k = np.floor(quota).astype(np.int64)
    short = n_test - int(k.sum())
    order = np.argsort(-(quota - k), kind="stable")
    k[order[:short]] += 1
    return k


def split_indices(n: int, test_fraction: float, seed: int = 0, labels=None):
    """Seeded random split of range(n) into (train_idx, test_idx).

    round(n * test_fraction) items are held out (Python's round: halves go to the even number).
    With labels that are all known (>= 0) the split is stratified: each class gives about
    test_fraction of its members (see _stratified_counts); otherwise it is a plain permutation.
    Same seed -> same split.
    """
    tf = _check_test_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    n_test = int(round(n * tf))
    if labels is not None and len(labels) == n and n > 0 and np.all(np.asarray(labels) >= 0):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        per_class = _stratified_counts(counts, tf, n_test)
        train_parts, test_parts = [], []
        for cls, k in zip(classes, per_class):
            members = rng.permutation(np.flatnonzero(labels == cls))
            test_parts.append(members[:k])
            train_parts.append(members[k:])
        train_idx = rng.permutation(np.concatenate(train_parts))
        test_idx = rng.permutation(np.concatenate(test_parts))
    else:
        order = rng.permutation(n)
        train_idx, test_idx = order[n_test:], order[:n_test]
    if len(train_idx) == 0:
        raise ValueError(f"test_fraction={test_fraction} leaves no training examples out of {n}")
    return train_idx, test_idx


def ordered_split(n: int, test_fraction: float) -> Tuple[slice, slice]:
    """Split range(n) in order: the last round(n * test_fraction) items are the test part."""
    tf = _check_test_fraction(test_fraction)
    n_test = int(round(n * tf))
    if n - n_test <= 0:
        raise ValueError(f"test_fraction={test_fraction} leaves no training examples out of {n}")
    return slice(0, n - n_test), slice(n - n_test, n)


# =========================================================================== finding IDX files


def _dataset_root() -> Path:
    """Where downloads go: $NPVAE_DATA when set, else ~/.cache/npvae (read at call time)."""
    env = os.environ.get("NPVAE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "npvae"


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


def find_idx_files(directory: PathLike) -> dict:
    """Map role -> path for the IDX files present in `directory` (raw name preferred over .gz)."""
    found = {}
    directory = Path(directory)
    for role, base in IDX_FILES.items():
        for candidate in (directory / base, directory / (base + ".gz")):
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def _usable(files: dict) -> bool:
    """A directory is usable when it has the t10k pair and either both train files or neither."""
    has_test = "test_images" in files and "test_labels" in files
    n_train = ("train_images" in files) + ("train_labels" in files)
    return has_test and n_train != 1


def locate_idx_dir(name: str, data_dir: Optional[PathLike] = None, extra_dirs: Sequence = ()):
    """First searched directory with a usable set of IDX files: (directory, role -> path), or None."""
    for d in list(dataset_dirs(name, data_dir)) + [Path(x) for x in extra_dirs]:
        files = find_idx_files(d)
        if _usable(files):
            return d, files
        if files:
            log.info("ignoring %s: incomplete set of IDX files %s", d, sorted(files))
    return None


# =========================================================================== downloads


def mirror_urls(name: str, mirrors: Optional[Sequence[str]] = None) -> list:
    """Base URLs to try for `name`: the `mirrors` argument, else $NPVAE_MIRRORS, else MIRRORS[name]."""
    if mirrors is None:
        env = os.environ.get("NPVAE_MIRRORS", "").replace(",", " ").split()
        mirrors = env or MIRRORS.get(name, [])
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m.replace("{name}", name) for m in mirrors]


def _join_url(base: str, filename: str) -> str:
    """base URL + "/" + file name, without doubling the slash."""
    return base.rstrip("/") + "/" + filename


class _ShortRead(Exception):
    """The server closed the connection before sending Content-Length bytes."""


# Errors that mean "this mirror did not deliver": worth trying the next one.
_TRANSFER_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, _ShortRead)


def _stream_to(url: str, fh) -> Tuple[int, str]:
    """Copy the body at `url` into the open binary file `fh`; return (bytes written, SHA-256 hex).

    Raises _ShortRead when fewer bytes arrive than the Content-Length header announced.
    """
    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
        announced = resp.headers.get("Content-Length")
        while True:
            chunk = resp.read(DOWNLOAD_CHUNK)
            if not chunk:
                break
            fh.write(chunk)
            digest.update(chunk)
            received += len(chunk)
    if announced is not None and received != int(announced):
        raise _ShortRead(f"connection closed after {received} of {announced} bytes")
    return received, digest.hexdigest()


def _fetch_verified(url: str, target: Path, expected_sha256: str) -> None:
    """Download `url` to `target` atomically: a temp file in the same directory, SHA-256 check, rename.

    A half-written or mismatching file never appears under the target name, and the temp file is
    removed on any failure. A checksum mismatch raises ValueError.
    """
    # A hidden, unique name beside the target ("x" mode: never reuse one; permissions follow the umask).
    tmp_name = str(target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.part"))
    try:
        with open(tmp_name, "xb") as fh:
            _, actual = _stream_to(url, fh)
        if actual != expected_sha256.lower():
            raise ValueError(
                f"{target}: SHA-256 mismatch for the download from {url}: expected {expected_sha256}, "
                f"got {actual}; the file was discarded"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def download_file(name: str, filename: str, dest: PathLike, mirrors: Optional[Sequence[str]] = None) -> Path:
    """Fetch one file of dataset `name` into directory `dest`, trying each mirror in turn.

    Network and HTTP errors move on to the next mirror; when all fail, DownloadError lists each
    mirror's error. A checksum mismatch raises ValueError at once (the bytes arrived, but are wrong).
    """
    expected = SHA256.get(name, {}).get(filename)
    if expected is None:
        raise ValueError(f"no known SHA-256 for {name}/{filename}; refusing to download it unverified")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / filename
    bases = mirror_urls(name, mirrors)
    if not bases:
        raise DownloadError(f"no mirrors configured for {name!r}")
    failures = []
    for base in bases:
        url = _join_url(base, filename)
        log.info("downloading %s", url)
        try:
            _fetch_verified(url, target, expected)
            return target
        except _TRANSFER_ERRORS as exc:
            failures.append(f"  {url}: {exc}")
    raise DownloadError(f"could not download {filename} for {name!r} from any mirror:\n" + "\n".join(failures))


def download_dataset(
    name: str,
    dest: Optional[PathLike] = None,
    *,
    mirrors: Optional[Sequence[str]] = None,
    roles: Sequence[str] = tuple(IDX_FILES),
) -> Path:
    """Download the .gz IDX files of `name` (the given roles) into `dest`, skipping ones present.

    `dest` defaults to $NPVAE_DATA/<name> or ~/.cache/npvae/<name>. Returns the directory.
    """
    if name not in MIRRORS and mirrors is None and not os.environ.get("NPVAE_MIRRORS"):
        raise ValueError(f"no download mirrors for {name!r}; known: {sorted(MIRRORS)}")
    dest = Path(dest) if dest is not None else _dataset_root() / name
    present = find_idx_files(dest) if dest.is_dir() else {}
    for role in roles:
        if role not in present:
            download_file(name, IDX_FILES[role] + ".gz", dest, mirrors)
    return dest


# =========================================================================== array checks


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


# =========================================================================== user files


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


def _load_user_arrays(path: Path, test_fraction: float, seed: int, dtype) -> Dataset:
    """Validate, scale and (when it has no test part) split a user's own array file."""
    source = str(path)
    x_train, y_train, x_test, y_test = _read_user_file(path)
    x_train, image_shape = _flatten_images(x_train, source)
    y_train = _as_labels(y_train, x_train.shape[0], source)
    if x_test is None:
        train_idx, test_idx = split_indices(x_train.shape[0], test_fraction, seed, y_train)
        x_train, x_test = x_train[train_idx], x_train[test_idx]
        y_train, y_test = y_train[train_idx], y_train[test_idx]
    else:
        x_test, test_shape = _flatten_images(x_test, source)
        if x_test.shape[1] != x_train.shape[1]:
            raise ValueError(f"{source}: x_train has {x_train.shape[1]} features but x_test has {x_test.shape[1]}")
        if test_shape != image_shape:
            image_shape = None
        y_test = _as_labels(y_test, x_test.shape[0], source)
    x_train, x_test = to_unit_range([x_train, x_test], source, dtype)
    return Dataset(x_train, y_train, x_test, y_test, name=source, image_shape=image_shape, source=source)


# =========================================================================== built-in datasets


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


def load_idx_pair(images_path: PathLike, labels_path: PathLike, dtype=np.float32):
    """Read matching IDX image and label files: ((N, H*W) `dtype` in [0, 1], (N,) int64, (H, W))."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected (N, H, W) unsigned bytes, got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D label array, got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}")
    x = images.reshape(images.shape[0], -1).astype(dtype)
    x /= 255  # (N, H*W) in [0, 1]
    return x, labels.astype(np.int64), tuple(int(s) for s in images.shape[1:])


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
    return Dataset(x_train, ds.y_train, x_test, ds.y_test, ds.name, ds.image_shape, ds.source)


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
    """Load a dataset by name ('digits', 'mnist', 'fashion-mnist') or from a .npy / .npz / .csv path.

    * digits: seeded stratified split with `test_fraction`.
    * mnist, fashion-mnist: IDX files found as the module docstring says; official split when the
      train files exist, else the t10k set split in order (last round(n * test_fraction) held out);
      downloaded from `mirrors` (default: $NPVAE_MIRRORS or MIRRORS[name]) when absent and `download`.
    * user files: .npy (one array), .npz (x_train [+ y_train, x_test, y_test], or one array), .csv
      (numbers, optional header; a column named 'label' holds labels). Arrays are flattened to
      (N, D), must be finite, and in [0, 1] or integers in [0, 255] (then divided by 255). Without an
      explicit test part they are split with `test_fraction` and `seed`. Unknown labels are -1.
    * binarize: None, 'static' (one Bernoulli draw per pixel seeded by `seed`, fixed at load) or
      'threshold' (x > 0.5).
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
