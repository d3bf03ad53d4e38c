"""Hostile and careless data files: bombs, FIFOs, damaged archives, odd CSV files and bad labels.

Each test builds the faulty file itself and checks the loader refuses it with a one-line error
naming the file (or reads it correctly), without reading wrong data silently and without
allocating more than the size it checked. The gzip and deflate bombs are real streams: the
builder's output is checked to inflate to what it claims.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from npvae import limits
from npvae.data import load_dataset, read_idx

try:  # tests/ on sys.path (pytest's default rootdir-less layout)
    from idx_helpers import idx_bytes, write_file
except ImportError:  # tests/ is a package
    from .idx_helpers import idx_bytes, write_file

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


@pytest.fixture(autouse=True)
def default_caps(monkeypatch):
    """Every test starts from the default caps, whatever the environment says."""
    monkeypatch.delenv(limits.BYTES_VARIABLE, raising=False)
    monkeypatch.delenv("NPVAE_DATA", raising=False)


# =========================================================================== builders


def gzip_of_zeros(prefix: bytes, n_mib: int) -> bytes:
    """A valid gzip member holding `prefix` then n_mib MiB of zero bytes, built in O(file size).

    One MiB of zeros is deflated once after a full flush (which resets the window, so the block
    stands alone) and that block repeated; the trailer carries the true CRC-32 and length.
    """
    zeros = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(n_mib):
        crc = zlib.crc32(zeros, crc)
    size = (len(prefix) + n_mib * MIB) & 0xFFFFFFFF
    member_header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x02\xff"
    trailer = crc.to_bytes(4, "little") + size.to_bytes(4, "little")
    return member_header + head + block * n_mib + tail + trailer


def idx_header(code: int, dims: tuple) -> bytes:
    """The magic number and big-endian dims of an IDX file (type code 0x08 = unsigned bytes)."""
    return bytes([0, 0, code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


def npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    """A genuine .npy version 1.0 header declaring `shape` of `descr`, with no data after it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def write_npz_member(path: Path, name: str, content: bytes, compression=zipfile.ZIP_DEFLATED) -> Path:
    """An .npz with one member `name` whose bytes are `content`, exactly as given."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(name, content)
    return path


def one_line_error(excinfo) -> str:
    """The message of a raised error, asserted to be a single line."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def test_gzip_builder_makes_real_streams():
    data = gzip_of_zeros(b"head", 3)
    assert gzip.decompress(data) == b"head" + bytes(3 * MIB)  # CRC and length checked too
    assert len(gzip_of_zeros(b"", 256)) < 300_000  # 256 MiB from under 300 kB: a bomb's ratio


# =========================================================================== .npz bombs and damage


def test_npz_member_declaring_1e12_floats_is_refused_before_allocating(tmp_path):
    path = write_npz_member(tmp_path / "bomb.npz", "x_train.npy", npy_header((10**6, 10**6)) + bytes(64))
    with pytest.raises(limits.LimitError) as info:
        load_dataset(path)
    message = one_line_error(info)
    assert message.startswith(f"{path}: array x_train of shape (1000000, 1000000) needs 8.0 TB")
    assert limits.BYTES_VARIABLE in message


def test_npz_of_zeros_inflating_past_the_cap(tmp_path, monkeypatch):
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x_train=np.zeros((2000, 1000), np.uint8))  # 2 MB of bytes, 16 MB as float64
    assert path.stat().st_size < 20_000
    monkeypatch.setenv(limits.BYTES_VARIABLE, "1000000")
    with pytest.raises(limits.LimitError) as info:
        load_dataset(path)
    assert one_line_error(info).startswith(f"{path}: array x_train of shape (2000, 1000) needs 16.0 MB")
    monkeypatch.setenv(limits.BYTES_VARIABLE, str(64 * MIB))  # the same file loads under a higher cap
    assert load_dataset(path).x_train.shape == (1600, 1000)


@pytest.mark.parametrize("extra, held", [(1000, 1800), (-400, 400)])
def test_npz_entry_size_must_match_its_header(tmp_path, extra, held):
    data = np.full((10, 10), 0.5).tobytes()
    content = npy_header((10, 10)) + (data + bytes(extra) if extra > 0 else data[:extra])
    path = write_npz_member(tmp_path / "crafted.npz", "x_train.npy", content)
    with pytest.raises(ValueError) as info:
        load_dataset(path)
    assert one_line_error(info) == (f"{path}: member x_train.npy declares 800 bytes of data but its zip entry "
                                    f"holds {held}: the archive is damaged or crafted")


def test_truncated_and_damaged_npz(tmp_path):
    whole = tmp_path / "whole.npz"
    np.savez_compressed(whole, x_train=np.random.default_rng(0).random((200, 50)))
    raw = whole.read_bytes()
    cut = write_file(tmp_path / "cut.npz", raw[: len(raw) // 2])
    with pytest.raises(ValueError) as info:
        load_dataset(cut)
    assert one_line_error(info).startswith(f"{cut}: truncated or damaged .npz file")
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF  # inside the deflated data of x_train.npy
    bad = write_file(tmp_path / "flipped.npz", bytes(flipped))
    with pytest.raises(ValueError) as info:
        load_dataset(bad)
    assert one_line_error(info).startswith(f"{bad}: member x_train.npy is damaged (")


def test_npz_member_compressed_another_way_is_refused(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((5, 5)))
    path = write_npz_member(tmp_path / "bz.npz", "x_train.npy", buf.getvalue(), zipfile.ZIP_BZIP2)
    with pytest.raises(ValueError, match=re.escape(f"{path}: member x_train.npy is compressed with zip method 12")):
        load_dataset(path)


# =========================================================================== .npy files


def test_random_bytes_are_not_a_npy_or_npz_file_and_not_a_pickle(tmp_path):
    noise = np.random.default_rng(7).bytes(4096)
    assert noise[0] != 0x80  # the seed gives bytes that do not start as a pickle does
    for suffix, kind in ((".npy", ".npy file"), (".npz", ".npz file")):
        path = write_file(tmp_path / f"noise{suffix}", noise)
        with pytest.raises(ValueError) as info:
            load_dataset(path)
        message = one_line_error(info)
        assert message.startswith(f"{path}: not a {kind}") and "pickle" not in message


def test_pickles_are_called_pickles_and_never_loaded(tmp_path):
    pickled = write_file(tmp_path / "p.npy", pickle.dumps([[0.5, 0.5]], protocol=4))
    with pytest.raises(ValueError, match=re.escape(f"{pickled}: a Python pickle, not a .npy file")):
        load_dataset(pickled)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[0.5, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=re.escape(f"{objects}: holds Python objects (dtype object)")):
        load_dataset(objects)


def test_npy_length_must_match_its_header(tmp_path):
    whole = tmp_path / "whole.npy"
    np.save(whole, np.full((10, 10), 0.5))
    raw = whole.read_bytes()
    cut = write_file(tmp_path / "cut.npy", raw[:-400])
    with pytest.raises(ValueError) as info:
        load_dataset(cut)
    assert one_line_error(info) == f"{cut}: truncated: the .npy header declares 800 bytes of data, found 400"
    longer = write_file(tmp_path / "longer.npy", raw + bytes(8))
    with pytest.raises(ValueError, match=re.escape(f"{longer}: 8 trailing bytes after the 800 bytes")):
        load_dataset(longer)


def test_npy_fortran_order_and_big_endian_read_right(tmp_path):
    x = np.random.default_rng(3).random((20, 6))
    for name, stored in (("f.npy", np.asfortranarray(x)), ("be.npy", x.astype(">f8"))):
        np.save(tmp_path / name, stored)
        ds = load_dataset(tmp_path / name, test_fraction=0.25, dtype=np.float64)
        np.testing.assert_array_equal(np.sort(np.concatenate([ds.x_train, ds.x_test]), axis=0), np.sort(x, axis=0))


def test_arrays_without_features_or_examples(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((300, 0)))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'wide.npy'}: the array of shape (300, 0) has 0 features")):
        load_dataset(tmp_path / "wide.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 5)))
    with pytest.raises(ValueError, match=re.escape("the array of shape (0, 5) has no examples")):
        load_dataset(tmp_path / "empty.npy")
    np.savez(tmp_path / "parts.npz", x_train=np.zeros((4, 3)), x_test=np.zeros((0, 3)))
    with pytest.raises(ValueError, match=re.escape("x_test of shape (0, 3) has no examples")):
        load_dataset(tmp_path / "parts.npz")


# =========================================================================== labels


def test_npz_labels_must_be_whole_and_at_least_minus_one(tmp_path):
    x = np.full((6, 2), 0.5)
    np.savez(tmp_path / "half.npz", x_train=x, y_train=np.array([0, 1, 2.5, 0, 1, 2]))
    with pytest.raises(ValueError, match=re.escape("labels must be whole numbers; found 2.5")):
        load_dataset(tmp_path / "half.npz")
    np.savez(tmp_path / "neg.npz", x_train=x, y_train=np.array([0, 1, -2, 0, 1, 2]))
    with pytest.raises(ValueError, match=re.escape("labels must be -1 (unknown) or more; found -2")):
        load_dataset(tmp_path / "neg.npz")


def write_t10k(folder: Path, labels: np.ndarray) -> Path:
    """The t10k pair of a tiny IDX dataset with the given label array (any IDX element type)."""
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 4, 4), dtype=np.uint8)
    write_file(folder / "t10k-images-idx3-ubyte", idx_bytes(images))
    return write_file(folder / "t10k-labels-idx1-ubyte", idx_bytes(labels))


def test_idx_float_labels_must_be_whole(tmp_path):
    labels = write_t10k(tmp_path / "half", np.array([1, 2, 3.5, 0, 1], dtype=">f4"))
    with pytest.raises(ValueError, match=re.escape(f"{labels}: labels must be whole numbers; found 3.5")):
        load_dataset("mnist", data_dir=tmp_path / "half", download=False)
    write_t10k(tmp_path / "whole", np.array([1, 2, 3.0, 0, 1], dtype=">f4"))
    ds = load_dataset("mnist", data_dir=tmp_path / "whole", download=False, test_fraction=0.4)
    assert np.concatenate([ds.y_train, ds.y_test]).tolist() == [1, 2, 3, 0, 1]
    assert ds.y_train.dtype == np.int64
    negative = write_t10k(tmp_path / "neg", np.array([1, -5, 3, 0, 1], dtype=">i1"))
    with pytest.raises(ValueError, match=re.escape(f"{negative}: labels must be -1 (unknown) or more; found -5")):
        load_dataset("mnist", data_dir=tmp_path / "neg", download=False)


# =========================================================================== IDX bombs (in process, measured)


def peak_while(call) -> tuple:
    """(the exception `call` raised, the peak of traced allocations in bytes while it ran)."""
    tracemalloc.start()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (the test inspects it)
        error = exc
    else:
        error = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return error, peak


def test_gzip_bomb_with_small_header_is_refused_after_one_extra_byte(tmp_path):
    path = write_file(tmp_path / "t10k-images-idx3-ubyte.gz", gzip_of_zeros(idx_header(0x08, (10, 32, 32)), 256))
    error, peak = peak_while(lambda: read_idx(path))
    assert isinstance(error, ValueError), error
    assert str(error) == (f"{path}: trailing bytes after the expected 10240 bytes of image data (dims (10, 32, 32)): "
                          "the gzip stream inflates to more than its header declares")
    assert peak < 8 * MIB  # the stream holds 256 MiB


class CountingInflater:
    """A zlib decompressobj that tallies the bytes it inflates (into the shared list `tally`)."""

    def __init__(self, tally, *args):
        self._inner, self._tally = REAL_DECOMPRESSOBJ(*args), tally

    def decompress(self, data, max_length=0):
        out = self._inner.decompress(data, max_length)
        self._tally.append(len(out))
        return out

    def __getattr__(self, name):  # eof, unused_data, unconsumed_tail
        return getattr(self._inner, name)


REAL_DECOMPRESSOBJ = zlib.decompressobj


def test_gzip_bomb_inflates_only_the_declared_payload_and_one_byte(tmp_path, monkeypatch):
    path = write_file(tmp_path / "bomb.gz", gzip_of_zeros(idx_header(0x08, (10, 32, 32)), 64))
    tally = []
    monkeypatch.setattr(zlib, "decompressobj", lambda *args: CountingInflater(tally, *args))
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(path)
    assert sum(tally) == 16 + 10 * 32 * 32 + 1


def test_gzip_damage_is_caught_and_members_are_joined(tmp_path):
    labels = np.arange(200, dtype=np.uint8) % 10
    whole = gzip.compress(idx_bytes(labels), mtime=0)
    bad_crc = write_file(tmp_path / "crc.gz", whole[:-8] + bytes([whole[-8] ^ 1]) + whole[-7:])
    with pytest.raises(ValueError, match=re.escape(f"{bad_crc}: corrupt or truncated gzip stream")):
        read_idx(bad_crc)
    raw = idx_bytes(labels)
    split = write_file(tmp_path / "two.gz", gzip.compress(raw[:50]) + gzip.compress(raw[50:]))
    np.testing.assert_array_equal(read_idx(split), labels)
    longer = write_file(tmp_path / "longer.gz", whole + gzip.compress(b"x"))
    with pytest.raises(ValueError, match="trailing bytes after the expected 200 bytes of label data"):
        read_idx(longer)


def test_gzip_bomb_with_huge_header_is_refused_before_inflating(tmp_path, monkeypatch):
    n = 256 * MIB // 1024
    path = write_file(tmp_path / "t10k-images-idx3-ubyte.gz", gzip_of_zeros(idx_header(0x08, (n, 32, 32)), 256))
    monkeypatch.setenv(limits.BYTES_VARIABLE, str(64 * MIB))
    error, peak = peak_while(lambda: read_idx(path))
    assert isinstance(error, limits.LimitError), error
    assert str(error).startswith(f"{path}: IDX image data of shape ({n}, 32, 32) needs 2.1 GB")
    assert peak < 8 * MIB


def test_gzip_header_declaring_more_than_the_file_can_hold(tmp_path):
    path = write_file(tmp_path / "labels.gz", gzip.compress(idx_header(0x08, (10_000_000,)) + bytes(100)))
    error, peak = peak_while(lambda: read_idx(path))
    assert isinstance(error, ValueError), error
    assert str(error).startswith(f"{path}: truncated or damaged: the header declares 10000000 bytes of label data, "
                                 "more than a gzip file of")
    assert peak < 1 * MIB


def test_raw_idx_size_is_checked_against_the_file_before_reading(tmp_path, monkeypatch):
    small = write_file(tmp_path / "small", idx_header(0x08, (10**6, 10**3, 10**3)) + bytes(12))
    with pytest.raises(ValueError) as info:
        read_idx(small)
    assert one_line_error(info) == f"{small}: truncated: expected 1000000000000 bytes of image data, found 12"
    n = 256 * MIB // 1024  # a sparse file as long as its header declares: only the cap stops it
    sparse = write_file(tmp_path / "sparse", idx_header(0x08, (n, 32, 32)))
    os.truncate(sparse, 16 + 256 * MIB)
    monkeypatch.setenv(limits.BYTES_VARIABLE, str(64 * MIB))
    error, peak = peak_while(lambda: read_idx(sparse))
    assert isinstance(error, limits.LimitError) and str(error).startswith(f"{sparse}: IDX image data"), error
    assert peak < 1 * MIB


# =========================================================================== under a real memory cap (subprocess)

MEMORY_CAP = 1536 * MIB

CAPPED_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    cap = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import numpy as np
    from npvae.data import load_dataset, read_idx
    print(json.dumps("imported"), flush=True)
    try:
        np.ones(2 * 2**30, np.uint8)
        print(json.dumps("2 GiB allocated: the cap does not bite"), flush=True)
    except MemoryError:
        print(json.dumps("cap bites"), flush=True)
    for path in sys.argv[2:]:
        try:
            (load_dataset if path.endswith(".npz") else read_idx)(path)
            result = ["no error", ""]
        except BaseException as exc:
            result = [type(exc).__name__, str(exc), isinstance(exc, ValueError)]
        print(json.dumps([path] + result), flush=True)
    """
)


@pytest.fixture(scope="module")
def gigabyte_bombs(tmp_path_factory):
    """Files that would each need gigabytes if trusted: two 3 GiB gzip streams, a sparse 2 GiB raw
    IDX file, and an .npz member declaring 10^12 floats."""
    folder = tmp_path_factory.mktemp("bombs")
    huge = write_file(folder / "huge-header.gz", gzip_of_zeros(idx_header(0x08, (3 * MIB, 32, 32)), 3072))
    small = write_file(folder / "small-header.gz", gzip_of_zeros(idx_header(0x08, (10, 32, 32)), 3072))
    sparse = write_file(folder / "sparse-idx3-ubyte", idx_header(0x08, (2 * MIB, 32, 32)))
    os.truncate(sparse, 16 + 2 * 2**30)
    npz = write_npz_member(folder / "declared.npz", "x_train.npy", npy_header((10**6, 10**6)) + bytes(64))
    return [huge, small, sparse, npz]


def test_bombs_are_refused_under_a_memory_cap(gigabyte_bombs):
    for path in gigabyte_bombs[:2]:
        assert path.stat().st_size < 4 * MIB  # each inflates to 3 GiB
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop(limits.BYTES_VARIABLE, None)
    run = subprocess.run([sys.executable, "-c", CAPPED_SCRIPT, str(MEMORY_CAP)] + [str(p) for p in gigabyte_bombs],
                         capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[:1] == ["imported"], run.stderr  # numpy and npvae import under the cap
    assert lines[1] == "cap bites"  # and the cap is low enough to stop a 2 GiB array
    results = {Path(entry[0]).name: entry[1:] for entry in lines[2:]}
    assert sorted(results) == sorted(p.name for p in gigabyte_bombs), run.stderr
    for name, (kind, message, *is_value_error) in results.items():
        assert kind != "MemoryError" and is_value_error == [True], (name, kind, message)
        assert "\n" not in message and message.startswith(str(gigabyte_bombs[0].parent / name)), message
    assert results["huge-header.gz"][0] == results["sparse-idx3-ubyte"][0] == "LimitError"
    assert results["declared.npz"][0] == "LimitError"
    assert "trailing bytes after the expected 10240 bytes" in results["small-header.gz"][1]


# =========================================================================== FIFOs

FIFO_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from npvae.data import load_dataset, read_idx
    folder = sys.argv[1]
    calls = [("data.npy", lambda: load_dataset(folder + "/data.npy")),
             ("data.npz", lambda: load_dataset(folder + "/data.npz")),
             ("data.csv", lambda: load_dataset(folder + "/data.csv")),
             ("read_idx", lambda: read_idx(folder + "/mnist/t10k-images-idx3-ubyte")),
             ("mnist", lambda: load_dataset("mnist", data_dir=folder + "/mnist", download=False))]
    for name, call in calls:
        try:
            call()
            print(json.dumps([name, "no error", ""]), flush=True)
        except Exception as exc:
            print(json.dumps([name, type(exc).__name__, str(exc)]), flush=True)
    """
)


def test_fifos_are_refused_at_once(tmp_path):
    (tmp_path / "mnist").mkdir()
    for name in ("data.npy", "data.npz", "data.csv", "mnist/t10k-images-idx3-ubyte", "mnist/t10k-labels-idx1-ubyte"):
        os.mkfifo(tmp_path / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=30, env=env, cwd=REPO)  # a loader waiting on a FIFO fails here
    results = {name: (kind, message) for name, kind, message in map(json.loads, run.stdout.splitlines())}
    assert sorted(results) == ["data.csv", "data.npy", "data.npz", "mnist", "read_idx"], run.stderr
    for name, (kind, message) in results.items():
        assert kind == "OSError", (name, kind, message)
        assert "\n" not in message and message.endswith("is a FIFO (named pipe), not a regular file"), message
    assert results["mnist"][1] == f"{tmp_path}/mnist/t10k-images-idx3-ubyte is a FIFO (named pipe), not a regular file"


# =========================================================================== CSV


def write_csv(path: Path, text: str) -> Path:
    """Write CSV text as UTF-8 bytes exactly as given (a leading \\ufeff becomes a BOM)."""
    return write_file(path, text.encode("utf-8"))


def test_csv_bom_does_not_turn_data_into_a_header(tmp_path):
    path = write_csv(tmp_path / "bom.csv", "\ufeff0.5,0.25\n0,1\n1,0\n0.75,0.5\n0.125,1\n")
    ds = load_dataset(path, test_fraction=0.2, dtype=np.float64)
    rows = np.concatenate([ds.x_train, ds.x_test])
    assert rows.shape == (5, 2) and [0.5, 0.25] in rows.tolist()
    assert ds.notes == ()


def test_csv_bom_before_a_label_header(tmp_path):
    path = write_csv(tmp_path / "bom.csv", "\ufefflabel,p0,p1\n" + "".join(f"{i % 2},0.5,0.25\n" for i in range(10)))
    ds = load_dataset(path)
    assert ds.x_train.shape[1] == 2
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0] * 5 + [1] * 5
    assert ds.notes == (f"{path}: row 1 read as a header (label, p0, p1), not data",)


@pytest.mark.parametrize("marker", ["N/A", "", "na", "NULL", "NaN"])
def test_csv_first_row_with_a_missing_value_is_data(tmp_path, marker):
    path = write_csv(tmp_path / "holes.csv", f"0.5,{marker},0.25\n0.1,0.2,0.3\n0.4,0.5,0.6\n")
    with pytest.raises(ValueError) as info:
        load_dataset(path)
    assert one_line_error(info).startswith(f"{path}: 1 NaN values (missing entries")


def test_csv_header_is_noted_and_carried_through_binarisation(tmp_path):
    path = write_csv(tmp_path / "table.csv", "p0,label,p1,p2\n" + "".join(f"0.75,{i % 2},0.25,1\n" for i in range(10)))
    ds = load_dataset(path, binarize="threshold")
    assert ds.notes == (f"{path}: row 1 read as a header (p0, label, p1, ...), not data",)
    assert ds.x_train.shape[1] == 3 and set(np.unique(ds.x_train).tolist()) == {0.0, 1.0}
    plain = write_csv(tmp_path / "plain.csv", "0.75,0.25\n0.5,1\n1,0\n0,0\n0.5,0.5\n")
    assert load_dataset(plain).notes == ()


def test_csv_missing_label_is_unknown(tmp_path):
    path = write_csv(tmp_path / "labels.csv", "label,p0\n1,0.5\nNA,0.25\n0,0.75\n,1\n1,0\n")
    ds = load_dataset(path, test_fraction=0.2)
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [-1, -1, 0, 1, 1]


def test_csv_malformed_rows_are_named(tmp_path):
    cases = {
        "mixed.csv": ("label,1,2\n0,0.5,0.5\n", "row 1 mixes numbers and text (label, 1, 2)"),
        "ragged.csv": ("0.1,0.2,0.3\n0.4,0.5,0.6\n0.7,0.8\n", "row 3 has 2 fields, but row 1 has 3"),
        "text.csv": ("a,b\n0.1,0.2\n0.3,abc\n", "row 3, column 2: 'abc' is not a number"),
        "only-labels.csv": ("label\n1\n0\n", "the table of shape (2, 0) has 0 features"),
        "header-only.csv": ("a,b\n", "no data rows"),
    }
    for name, (text, problem) in cases.items():
        path = write_csv(tmp_path / name, text)
        with pytest.raises(ValueError) as info:
            load_dataset(path)
        assert one_line_error(info).startswith(f"{path}: {problem}"), name


def test_csv_that_is_not_utf8(tmp_path):
    path = write_file(tmp_path / "latin1.csv", "caf\u00e9,b\n0.1,0.2\n".encode("latin-1"))
    with pytest.raises(ValueError) as info:
        load_dataset(path)
    assert one_line_error(info) == f"{path}: not UTF-8 text (byte 0xE9 at offset 3)"
