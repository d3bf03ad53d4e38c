"""IDX files, the format of MNIST and Fashion-MNIST: decoding, reading, and finding a dataset's four files.

An IDX file is a 4-byte magic number (two zero bytes, an element-type code, the number of
dimensions), one big-endian uint32 size per dimension, then the elements, big-endian, in C order,
and nothing after them. Files may be gzip-compressed; :func:`read_idx` tells a gzip stream by its
first two bytes (1f 8b), not by the file name. Every malformed file raises ValueError naming it.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

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

GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_DIMS = 32  # NumPy 1.x's limit; real IDX files have 1 to 4. More means "not an IDX file".


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


def _check_magic(buf: bytes, source: str) -> tuple:
    """(dtype code, ndim) from the first 4 bytes; ValueError when they are not an IDX magic number."""
    if len(buf) < 4:
        raise ValueError(f"{source}: truncated: {len(buf)} bytes is too short for an IDX header")
    magic = int.from_bytes(buf[:4], "big")
    zero0, zero1, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise ValueError(f"{source}: wrong magic number 0x{magic:08X}, not an IDX file")
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise ValueError(f"{source}: wrong magic number 0x{magic:08X}, not an IDX file ({ndim} dimensions)")
    return code, ndim


def _read_dims(buf: bytes, ndim: int, source: str) -> tuple:
    """The ndim big-endian uint32 sizes after the magic number; ValueError when the header is cut short."""
    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise ValueError(
            f"{source}: truncated: the header declares {ndim} dimensions "
            f"({header_len} header bytes) but the file has only {len(buf)} bytes"
        )
    return tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def parse_idx(buf: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian array of the declared shape.

    Layout: magic (0, 0, dtype code, ndim), then ndim big-endian uint32 sizes, then
    prod(sizes) big-endian elements and nothing else. `source` names the file in error messages.
    """
    code, ndim = _check_magic(buf, source)
    dims = _read_dims(buf, ndim, source)
    header_len = 4 + 4 * ndim
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
