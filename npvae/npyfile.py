"""Reading .npy arrays and .npz archives without trusting them: the one reader that npvae's
save files (npvae.io) and a user's data files (npvae.data.arrays) both go through.

A .npy stream is the magic string ``\\x93NUMPY``, a format version, a header (a Python dict
literal giving ``descr``, ``fortran_order`` and ``shape``), then the data. `read_header`
reads and checks the header before any data: pickles and object arrays are refused (only
pickle could read them, and unpickling can run code), as are other non-numeric dtypes,
negative sizes, and arrays above npvae's byte cap (npvae.limits). `read_data` then reads
exactly the bytes the header declared into a buffer of that size, a chunk at a time.

An .npz archive is a zip file of .npy members. `member_header` checks a member before any
of it is inflated: it must be stored or deflated (as NumPy writes them), and its declared
uncompressed size must be the header's length plus the data the header declares; since
zipfile never inflates a member past its declared size, a deflate bomb costs no more
memory than the array it claims to be, and that was checked against the cap.

Every refusal is a one-line ValueError naming the file (and member).
"""
from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from . import limits

READ_CHUNK = 1 << 20  # bytes moved per read when filling a buffer (bounds any temporary copy)
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
MAX_NPY_HEADER = 10_000  # NumPy's own default cap; a plain array's header is about 128 bytes
NPZ_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)


def one_line(exc: BaseException, most: int = 200) -> str:
    """An exception's message on one line of at most `most` characters (NumPy's may span several
    lines, or quote a whole damaged header)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= most else text[: most - 3] + "..."


def require_real(dtype: np.dtype, source: str) -> None:
    """ValueError unless dtype holds real numbers (booleans, integers or floats)."""
    if np.dtype(dtype).kind not in "buif":
        raise ValueError(f"{source}: expected real numbers, got dtype {dtype}")


# ------------------------------------------------------------------ reading into checked buffers


def read_exactly(stream, n: int) -> bytes:
    """Up to n bytes from stream; fewer only when the stream ends first."""
    parts, left = [], n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_into(stream, buffer: np.ndarray) -> int:
    """Fill a uint8 buffer from stream, READ_CHUNK bytes at a time; the number of bytes filled."""
    view, filled = memoryview(buffer).cast("B"), 0
    while filled < len(view):
        got = stream.readinto(view[filled : filled + READ_CHUNK])
        if not got:
            break
        filled += got
    return filled


# ------------------------------------------------------------------ .npy headers and data


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header declares: shape, dtype, order, and the header's own length in bytes."""

    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    length: int

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares (exact integer arithmetic)."""
        return math.prod(self.shape) * self.dtype.itemsize


def looks_pickled(start: bytes) -> bool:
    """True when bytes begin as a pickle of protocol 2 or later does (PROTO opcode 0x80, then 2..5)."""
    return len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5


def _npy_version(start: bytes, source: str, kind: str) -> tuple:
    """(major, minor) from the first 8 bytes of a .npy stream; ValueError for anything else."""
    if looks_pickled(start):
        raise ValueError(f"{source}: a Python pickle, not a {kind}; npvae never loads pickles (they can run code)")
    try:
        version = np.lib.format.read_magic(io.BytesIO(start))
    except ValueError:
        raise ValueError(f"{source}: not a {kind} (it does not begin with the .npy magic string)") from None
    if version == (3, 0):
        raise ValueError(f"{source}: .npy format version 3.0 (used for dtypes with non-Latin-1 field names) "
                         "is not read: only plain numeric arrays are")
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{source}: unknown .npy format version {version[0]}.{version[1]}")
    return version


def read_header(stream, path: str, source: str, name: str = "", kind: str = ".npy file",
                counted_itemsize: int = 0, kinds: str = "buif") -> NpyHeader:
    """Read and check the header at the start of a .npy stream, leaving the stream at the data.

    `source` names the file (and member) in messages; the size check names `path` and the array
    `name` (a member's). Refuses pickles, object dtypes, dtypes whose kind is not in `kinds`
    (default: real numbers), negative sizes, and (LimitError) arrays above NPVAE_MAX_BYTES,
    counting each element as max(its itemsize, counted_itemsize) bytes (a caller that will
    convert to float64 passes 8).
    """
    start = read_exactly(stream, len(NPY_MAGIC) + 2)
    version = _npy_version(start, source, kind)
    size_format = "<H" if version == (1, 0) else "<I"
    size_field = read_exactly(stream, struct.calcsize(size_format))
    if len(size_field) < struct.calcsize(size_format):
        raise ValueError(f"{source}: truncated .npy header")
    (text_length,) = struct.unpack(size_format, size_field)
    if text_length > MAX_NPY_HEADER:
        raise ValueError(f"{source}: .npy header of {text_length} bytes is longer than the {MAX_NPY_HEADER} "
                         "allowed: damaged, or not an array npvae can read")
    text = read_exactly(stream, text_length)
    if len(text) < text_length:
        raise ValueError(f"{source}: truncated .npy header")
    parse = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = parse(io.BytesIO(size_field + text))
    except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
        raise ValueError(f"{source}: damaged .npy header ({one_line(exc)})") from None
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"{source}: damaged .npy header (negative size in shape {shape})")
    if dtype.hasobject:
        raise ValueError(f"{source}: holds Python objects (dtype {dtype}), which only pickle can read; "
                         "npvae reads numeric arrays and never unpickles")
    if dtype.kind not in kinds:
        raise ValueError(f"{source}: expected {'real numbers' if kinds == 'buif' else 'numbers or text'}, "
                         f"got dtype {dtype}")
    array = f"array {name}" if name else "the array"
    limits.check_array(shape, max(counted_itemsize, dtype.itemsize), f"{path}: {array} of shape {shape}")
    return NpyHeader(shape, dtype, bool(fortran_order), len(start) + len(size_field) + len(text))


def read_data(stream, header: NpyHeader, source: str) -> np.ndarray:
    """The array a checked header declares, read from stream into a buffer of exactly its size."""
    raw = np.empty(header.nbytes, dtype=np.uint8)
    filled = read_into(stream, raw)
    if filled < header.nbytes:
        raise ValueError(f"{source}: truncated: the .npy header declares {header.nbytes} bytes of data, found {filled}")
    return raw.view(header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")


# ------------------------------------------------------------------ .npz archives


def member_key(filename: str) -> str:
    """The array name np.load gives a member: its file name without a final '.npy'."""
    return filename[:-4] if filename.endswith(".npy") else filename


def open_zip(fh, source: str) -> zipfile.ZipFile:
    """A ZipFile over an open .npz; one-line ValueError for a file that is not one or is damaged."""
    try:
        return zipfile.ZipFile(fh)
    except ZIP_ERRORS + (ValueError, struct.error) as exc:
        fh.seek(0)
        if fh.read(4) == ZIP_MAGIC:  # begins as a zip archive does: cut short or damaged
            raise ValueError(f"{source}: truncated or damaged .npz file ({one_line(exc)})") from None
        raise ValueError(f"{source}: not a .npz file (not a zip archive)") from None


def member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, **checks) -> NpyHeader:
    """A member's checked header (read_header's `checks`), its zip method and declared size
    checked too; nothing of its data is inflated."""
    where = f"{source}: member {info.filename}"
    if info.compress_type not in NPZ_METHODS:
        raise ValueError(f"{where} is compressed with zip method {info.compress_type}; "
                         "only stored and deflated members (as NumPy writes) are read")
    try:
        with archive.open(info) as stream:
            header = read_header(stream, source, where, member_key(info.filename), ".npy member", **checks)
    except ZIP_ERRORS as exc:
        raise ValueError(f"{where} is damaged ({one_line(exc)})") from None
    held = info.file_size - header.length
    if held != header.nbytes:
        raise ValueError(f"{where} declares {header.nbytes} bytes of data but its zip entry holds "
                         f"{held}: the archive is damaged or crafted")
    return header


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: NpyHeader, source: str) -> np.ndarray:
    """The data of a member whose header `member_header` returned."""
    where = f"{source}: member {info.filename}"
    try:
        with archive.open(info) as stream:
            read_exactly(stream, header.length)
            return read_data(stream, header, where)
    except ZIP_ERRORS as exc:
        raise ValueError(f"{where} is damaged ({one_line(exc)})") from None
