"""Verified, atomic downloads of a dataset's .gz IDX files.

Each file is fetched from a list of mirrors, tried in turn (``MIRRORS``, the ``mirrors`` argument
or ``$NPVAE_MIRRORS``), written to a hidden temporary file beside its target, checked against the
published SHA-256 (``SHA256``) and only then renamed into place, so a half-written or wrong file
never appears under the real name. A network or HTTP failure moves on to the next mirror; a
checksum mismatch stops at once. Files land in ``$NPVAE_DATA/<name>``, else ``~/.cache/npvae/<name>``.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .idx import IDX_FILES, PathLike, find_idx_files

log = logging.getLogger(__name__)

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
# * MNIST t10k-images / t10k-labels: also recomputed from copies of the published archives
#   (whose MD5s, 9fb629c4... and ec29112d..., are the ones LeCun's page lists).
# * MNIST train-*: taken from that listing only; no copy was at hand to recompute from.
# * Fashion-MNIST: taken from that listing, which agrees with several other public listings; not
#   recomputed. Debian's dataset-fashion-mnist re-compressed the files (its .gz headers drop the
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

DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a mirror is given up
DOWNLOAD_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror delivered a file (network errors, HTTP errors, connections closed early)."""


def _dataset_root() -> Path:
    """Where downloads go: $NPVAE_DATA when set, else ~/.cache/npvae (read at call time)."""
    env = os.environ.get("NPVAE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "npvae"


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
