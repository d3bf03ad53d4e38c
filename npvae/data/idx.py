"""IDX files, the format of MNIST and Fashion-MNIST: decoding, reading, and finding a dataset's four files.

An IDX file is a 4-byte magic number (two zero bytes, an element-type code, the number of
dimensions), one big-endian uint32 size per dimension, then the elements, big-endian, in C order,
and nothing after them. Files may be gzip-compressed; :func:`read_idx` tells a gzip stream by its
first two bytes (1f 8b), not by the file name. Every malformed file raises ValueError naming it.

Reading never trusts the header with memory. Only regular files are opened (a FIFO is refused,
not waited on). The header is read first; its declared size, counted as the floats the loaders
make of the elements (8 bytes each), must be within ``NPVAE_MAX_BYTES``. A raw file's length must
then match the declared size before the payload is read. A gzip file is inflated as a stream into
a buffer of exactly the declared size, then at most one more byte is inflated to detect trailing
data, so a gzip bomb is refused whether its header declares a huge size or a small one; a header
declaring more than the file could inflate to (deflate expands at most 1032 times) is refused
before anything is allocated.
"""
from __future__ import annotations

import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .. import limits
from ..files import open_regular
from ..npyfile import one_line, read_exactly, read_into
from .arrays import FLOAT_BYTES, _as_labels

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
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads the gzip wrapper and checks its CRC-32 and length
GZIP_INPUT_CHUNK = 64 * 1024  # compressed bytes read from the file at a time
MAX_IDX_DIMS = 32  # NumPy 1.x's limit; real IDX files have 1 to 4. More means "not an IDX file".
DEFLATE_MAX_RATIO = 1032  # the most one compressed byte of a deflate stream can expand to


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


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header declares: element type, dims, and the header's own length in bytes."""

    dtype: np.dtype
    dims: tuple

    @property
    def length(self) -> int:
        """Bytes of the header: the magic number and one uint32 per dimension."""
        return 4 + 4 * len(self.dims)

    @property
    def nbytes(self) -> int:
        """Bytes of payload the header declares (exact, no overflow)."""
        return math.prod(self.dims) * self.dtype.itemsize

    @property
    def kind(self) -> str:
        """'image data', 'label data' or 'data', for messages."""
        return _payload_kind(len(self.dims))


def _read_header(stream, source: str) -> IdxHeader:
    """Read the magic number and dims from the start of a stream; nothing of the payload."""
    head = read_exactly(stream, 4)
    code, ndim = _check_magic(head, source)
    head += read_exactly(stream, 4 * ndim)
    return IdxHeader(IDX_DTYPES[code], _read_dims(head, ndim, source))


def _check_limit(header: IdxHeader, source: str) -> None:
    """LimitError when the declared payload, as the floats the loaders make of it, is above NPVAE_MAX_BYTES."""
    limits.check_array(header.dims, max(FLOAT_BYTES, header.dtype.itemsize),
                       f"{source}: IDX {header.kind} of shape {header.dims}")


def _check_length(found: int, header: IdxHeader, source: str) -> None:
    """ValueError unless exactly the declared payload follows the header (found = bytes after it)."""
    expected = header.nbytes
    if found < expected:
        raise ValueError(f"{source}: truncated: expected {expected} bytes of {header.kind}, found {found}")
    if found > expected:
        raise ValueError(
            f"{source}: {found - expected} trailing bytes after the expected {expected} bytes of {header.kind} "
            f"(dims {header.dims})"
        )


def _decode(raw: np.ndarray, header: IdxHeader) -> np.ndarray:
    """The payload bytes as a native-endian array of the declared dims, byte-swapped in place."""
    big = raw.view(header.dtype)
    if not header.dtype.isnative:
        big.byteswap(inplace=True)
    return big.view(header.dtype.newbyteorder("=")).reshape(header.dims)


def _read_payload(stream, header: IdxHeader) -> tuple:
    """(buffer of exactly the declared payload size, bytes filled from stream)."""
    raw = np.empty(header.nbytes, dtype=np.uint8)
    return raw, read_into(stream, raw)


def _read_sized(stream, size: int, source: str) -> np.ndarray:
    """An uncompressed IDX stream of known total `size`: header, then length and limit checks, then payload."""
    header = _read_header(stream, source)
    _check_length(size - header.length, header, source)
    _check_limit(header, source)
    raw, filled = _read_payload(stream, header)
    _check_length(filled, header, source)  # the file shrank while it was read
    return _decode(raw, header)


def _most_gzip_yields(size: int) -> int:
    """An upper bound on what a gzip file of `size` bytes inflates to (deflate expands at most 1032:1)."""
    return DEFLATE_MAX_RATIO * size


class _GzipStream:
    """A gzip file inflated on demand: read(n) inflates at most the n bytes it returns.

    Concatenated gzip members are read one after another, as gzip.decompress reads them; zlib
    checks each member's CRC-32 and length. A file that ends inside a member raises EOFError,
    a damaged one zlib.error.
    """

    def __init__(self, fh):
        self._fh = fh
        self._inflate = zlib.decompressobj(GZIP_WBITS)
        self._input = b""

    def _next_member(self) -> bool:
        """Start the member after a finished one; False at the end of the file."""
        rest = self._inflate.unused_data or self._fh.read(GZIP_INPUT_CHUNK)
        if not rest:
            return False
        self._inflate, self._input = zlib.decompressobj(GZIP_WBITS), rest
        return True

    def read(self, n: int) -> bytes:
        """Up to n inflated bytes; fewer only at the end of the last member."""
        parts = []
        while n > 0:
            if self._inflate.eof and not self._next_member():
                break
            if not self._input:
                self._input = self._fh.read(GZIP_INPUT_CHUNK)
                if not self._input:
                    raise EOFError("the file ends inside a gzip member")
            data = self._inflate.decompress(self._input, n)
            self._input = self._inflate.unconsumed_tail
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def readinto(self, view) -> int:
        """Fill as much of a writable byte buffer as read(len(view)) gives; the count."""
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def _read_gzip(fh, size: int, source: str) -> np.ndarray:
    """A gzip-compressed IDX file, inflated as a stream: never more than the declared payload plus one byte."""
    stream = _GzipStream(fh)
    try:
        header = _read_header(stream, source)
        _check_limit(header, source)
        if header.length + header.nbytes > _most_gzip_yields(size):
            raise ValueError(
                f"{source}: truncated or damaged: the header declares {header.nbytes} bytes of {header.kind}, "
                f"more than a gzip file of {size} bytes can inflate to"
            )
        raw, filled = _read_payload(stream, header)
        _check_length(filled, header, source)
        if stream.read(1):
            raise ValueError(
                f"{source}: trailing bytes after the expected {header.nbytes} bytes of {header.kind} "
                f"(dims {header.dims}): the gzip stream inflates to more than its header declares"
            )
    except (EOFError, zlib.error) as exc:
        raise ValueError(f"{source}: corrupt or truncated gzip stream ({one_line(exc)})") from None
    return _decode(raw, header)


def parse_idx(buf: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian array of the declared shape.

    Layout: magic (0, 0, dtype code, ndim), then ndim big-endian uint32 sizes, then
    prod(sizes) big-endian elements and nothing else. `source` names the file in error messages.
    """
    return _read_sized(io.BytesIO(buf), len(buf), source)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip (told apart by the gzip magic bytes, not the name).

    Opens only regular files (a FIFO is refused at once). Raises ValueError naming the file for a
    wrong magic number, a truncated header or payload, trailing bytes, a corrupt / truncated gzip
    stream, or (LimitError) a declared size above NPVAE_MAX_BYTES; a raw file's declared size is
    compared with its length, and a gzip file inflated only as far as its header declares plus one
    byte, so no header and no stream makes it allocate more than the checked size.
    """
    source = str(path)
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        compressed = fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        if compressed:
            return _read_gzip(fh, size, source)
        return _read_sized(fh, size, source)


def load_idx_pair(images_path: PathLike, labels_path: PathLike, dtype=np.float32):
    """Read matching IDX image and label files: ((N, H*W) `dtype` in [0, 1], (N,) int64, (H, W)).

    Labels go through the same check as a user's labels: whole numbers from -1 up (a float label
    file holding 3.5 is refused, 3.0 is the label 3; NaN is -1, unknown).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected (N, H, W) unsigned bytes, got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D label array, got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}")
    labels = _as_labels(labels, images.shape[0], str(labels_path))
    x = images.reshape(images.shape[0], -1).astype(dtype)
    x /= 255  # (N, H*W) in [0, 1]
    return x, labels, tuple(int(s) for s in images.shape[1:])


def find_idx_files(directory: PathLike) -> dict:
    """Map role -> path for the IDX files present in `directory` (raw name preferred over .gz).

    Anything but a folder counts as present, so a FIFO or a device under one of the names is found
    and then refused by read_idx, with a message saying what it is, instead of being passed over.
    """
    found = {}
    directory = Path(directory)
    for role, base in IDX_FILES.items():
        for candidate in (directory / base, directory / (base + ".gz")):
            if candidate.exists() and not candidate.is_dir():
                found[role] = candidate
                break
    return found
