"""Tests for npvae.data: IDX parsing, dataset lookup, downloads (against a local server), user arrays."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from npvae import data
from npvae.data import datasets as data_datasets
from npvae.data import download as data_download
from npvae.data import (
    Dataset,
    DownloadError,
    binarize_batch,
    load_dataset,
    mnist_split,
    read_idx,
)

try:  # tests/ on sys.path (pytest's default rootdir-less layout)
    from idx_helpers import IDX_NAMES, dataset_files, gzip_bytes, idx_bytes, write_dataset_dir, write_file
except ImportError:  # tests/ is a package
    from .idx_helpers import IDX_NAMES, dataset_files, gzip_bytes, idx_bytes, write_dataset_dir, write_file

# Canonical SHA-256 of the MNIST test-set archives as published (the same values are listed in
# pytorch/vision, torchvision/prototype/datasets/_builtin/mnist.py, class MNIST); the archives'
# MD5s (9fb629c4189551a2d022fa330f9573f3, ec29112dd5afa0611ce80d1b7f02629c) are those on LeCun's page.
MNIST_T10K_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Keep every test away from the real caches: fresh HOME, no NPVAE_DATA / NPVAE_MIRRORS, no /usr/share."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NPVAE_DATA", raising=False)
    monkeypatch.delenv("NPVAE_MIRRORS", raising=False)
    monkeypatch.setattr(data_datasets, "SYSTEM_DATA_DIRS", [])
    return home


def files_under(path: Path) -> list:
    """Every file below path (including hidden temp files), as relative names."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


# =========================================================================== digits


def test_digits_shapes_range_and_labels():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    assert ds.name == "digits" and ds.image_shape == (8, 8) and ds.input_dim == 64
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == 64
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == round(0.2 * 1797) == 359
    assert np.abs(np.bincount(ds.y_test) / np.bincount(np.r_[ds.y_train, ds.y_test]) - 0.2).max() < 0.01
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train.max() == 1.0  # 16 / 16
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_digits_split_depends_only_on_seed():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert a.x_test.shape == c.x_test.shape
    assert not np.array_equal(a.x_test, c.x_test)


def test_digits_dtype_and_test_fraction():
    ds = load_dataset("digits", dtype=np.float64, test_fraction=0.5)
    assert ds.x_train.dtype == np.float64
    assert len(ds.x_test) == round(1797 / 2) == 898
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)
    with pytest.raises(ValueError, match="floating"):
        load_dataset("digits", dtype=np.int32)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*digits, mnist, fashion-mnist"):
        load_dataset("cifar")


# =========================================================================== real MNIST (passed as data_dir)
# The real MNIST t10k files come from conftest's `mnist_dir` fixture ($NPVAE_SHARED_DATA/mnist);
# every test hands that folder to the loaders explicitly, or through $NPVAE_DATA.


def test_real_mnist_archives_have_canonical_sha256(mnist_dir):
    d = mnist_dir
    for name, expected in MNIST_T10K_SHA256.items():
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == expected
        assert data.SHA256["mnist"][name] == expected


def test_real_mnist_split_8000_2000(mnist_dir):
    d = mnist_dir
    x_train, x_test, y_train, y_test = mnist_split(d)
    assert x_train.shape == (8000, 784) and x_test.shape == (2000, 784)
    assert y_train.shape == (8000,) and y_test.shape == (2000,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))
    # the first test image of MNIST is a 7, the last a 6
    assert y_train[0] == 7 and y_test[-1] == 6


def test_real_mnist_through_load_dataset_matches_mnist_split(mnist_dir):
    d = mnist_dir
    ds = load_dataset("mnist", data_dir=d, download=False)
    assert ds.image_shape == (28, 28) and ds.source == str(d)
    assert len(ds.x_train) + len(ds.x_test) == 10000
    x_train, x_test, y_train, y_test = mnist_split(d)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_test, y_test)
    images = read_idx(d / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8


def test_mnist_split_finds_the_files_through_npvae_data(monkeypatch, tmp_path, mnist_dir):
    (tmp_path / "mnist").symlink_to(mnist_dir, target_is_directory=True)
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path))
    x_train, x_test, _, y_test = mnist_split(download=False)
    assert x_train.shape == (8000, 784) and x_test.shape == (2000, 784)
    np.testing.assert_array_equal(y_test, mnist_split(mnist_dir, download=False)[3])


def test_mnist_split_without_data_dir_looks_only_in_the_lookup_path(tmp_path):
    # no $NPVAE_DATA, an empty ~/.cache and no system folders: nothing is found, and the message
    # lists exactly the folders of the lookup path
    with pytest.raises(FileNotFoundError) as info:
        mnist_split(download=False)
    listed = [line.strip() for line in str(info.value).splitlines() if line.startswith("  ")]
    assert listed == [str(d) for d in data.dataset_dirs("mnist")]


def test_debian_fashion_mnist_full_split():
    d = Path("/usr/share/datasets/fashion-mnist")
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    ds = load_dataset("fashion-mnist", data_dir=d, download=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10


# =========================================================================== read_idx


@pytest.mark.parametrize("dtype", [">u1", ">i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    raw = idx_bytes(array)
    path = write_file(tmp_path / "a.idx", gzip_bytes(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    gz_named_raw = write_file(tmp_path / "labels.gz", idx_bytes(labels))
    raw_named_gz = write_file(tmp_path / "labels-idx1-ubyte", gzip_bytes(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(gz_named_raw), labels)
    np.testing.assert_array_equal(read_idx(str(raw_named_gz)), labels)


def test_read_idx_wrong_magic(tmp_path):
    path = write_file(tmp_path / "train-images-idx3-ubyte.gz", gzip_bytes(b"\x00\x00\x09\x99" + bytes(20)))
    with pytest.raises(ValueError, match=re.escape(f"{path}: wrong magic number 0x00000999, not an IDX file")):
        read_idx(path)
    text = write_file(tmp_path / "notes.txt", b"hello world")
    with pytest.raises(ValueError, match=re.escape(f"{text}: wrong magic number 0x68656C6C")):
        read_idx(text)


def test_read_idx_truncated_payload(tmp_path):
    full = idx_bytes(np.zeros((1, 28, 28), np.uint8))
    path = write_file(tmp_path / "t10k-images-idx3-ubyte", full[: 16 + 12])
    with pytest.raises(ValueError, match=re.escape(f"{path}: truncated: expected 784 bytes of image data, found 12")):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = write_file(tmp_path / "x", bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big"))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": truncated: the header declares 3 dimensions"):
        read_idx(path)
    short = write_file(tmp_path / "y", b"\x00\x00")
    with pytest.raises(ValueError, match=re.escape(str(short)) + r": truncated: 2 bytes is too short"):
        read_idx(short)


def test_read_idx_trailing_bytes(tmp_path):
    path = write_file(tmp_path / "labels", idx_bytes(np.arange(5, dtype=np.uint8)) + b"xyz")
    with pytest.raises(ValueError, match=re.escape(f"{path}: 3 trailing bytes after the expected 5 bytes of label data")):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    gz = gzip_bytes(idx_bytes(np.random.default_rng(1).integers(0, 255, (50, 28, 28), dtype=np.uint8)))
    path = write_file(tmp_path / "t10k-images-idx3-ubyte.gz", gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": corrupt or truncated gzip stream"):
        read_idx(path)
    garbled = write_file(tmp_path / "garbled.gz", b"\x1f\x8b" + bytes(30))
    with pytest.raises(ValueError, match=re.escape(str(garbled)) + ": corrupt or truncated gzip stream"):
        read_idx(garbled)


def test_label_count_mismatch_names_both_files(tmp_path):
    images, labels = np.zeros((4, 2, 2), np.uint8), np.zeros(3, np.uint8)
    write_file(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images))
    write_file(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# =========================================================================== lookup order and splits


def test_t10k_only_directory_is_split_in_order(tmp_path):
    d = write_dataset_dir(tmp_path / "m", n_train=0, n_test=50)
    ds = load_dataset("mnist", data_dir=d, download=False)
    assert ds.x_train.shape == (40, 16) and ds.x_test.shape == (10, 16) and ds.image_shape == (4, 4)
    images = read_idx(d / "t10k-images-idx3-ubyte.gz").reshape(50, -1) / 255
    np.testing.assert_allclose(ds.x_train, images[:40], rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, images[40:], rtol=1e-6)
    assert len(load_dataset("mnist", data_dir=d, test_fraction=0.3, download=False).x_test) == 15


def test_full_directory_uses_official_split_and_raw_files(tmp_path):
    d = write_dataset_dir(tmp_path / "f", n_train=30, n_test=12)
    for gz in d.glob("*.gz"):  # raw files work as well as .gz
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    ds = load_dataset("fashion-mnist", data_dir=d, test_fraction=0.5, download=False)
    assert ds.x_train.shape == (30, 16) and ds.x_test.shape == (12, 16)
    assert ds.name == "fashion-mnist"


def test_lookup_order(tmp_path, monkeypatch, isolated):
    explicit = write_dataset_dir(tmp_path / "explicit", 0, 10)
    write_dataset_dir(tmp_path / "npvae_data" / "mnist", 0, 20)
    write_dataset_dir(isolated / ".cache" / "npvae" / "mnist", 0, 30)
    write_dataset_dir(tmp_path / "system" / "mnist", 0, 40)
    monkeypatch.setattr(data_datasets, "SYSTEM_DATA_DIRS", [tmp_path / "system"])
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "npvae_data"))

    def total(**kw):
        ds = load_dataset("mnist", download=False, **kw)
        return len(ds.x_train) + len(ds.x_test)

    assert total(data_dir=explicit) == 10
    assert total(data_dir=tmp_path / "explicit-missing") == 20
    assert total() == 20
    monkeypatch.delenv("NPVAE_DATA")
    assert total() == 30
    (isolated / ".cache").rename(tmp_path / "moved")
    assert total() == 40
    # a folder that holds <name>/ works as data_dir too
    assert total(data_dir=tmp_path / "system") == 40


def test_missing_everywhere_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)no fashion-mnist IDX files.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


# =========================================================================== downloads (local server)


class LocalMirror:
    """A ThreadingHTTPServer on 127.0.0.1 serving `files` under several behaviours, counting requests.

    /good/<f>    the file
    /corrupt/<f> the file with one byte changed (checksum mismatch)
    /short/<f>   announces the full Content-Length, sends half, closes the connection
    anything else: 404
    """

    def __init__(self):
        self.files = {}
        self.requests = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                mirror.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                mode, name = (parts[0], parts[-1]) if len(parts) == 2 else ("", "")
                body = mirror.files.get(name)
                if body is None or mode not in ("good", "corrupt", "short"):
                    self.send_error(404)
                    return
                if mode == "corrupt":
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "short" else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def count(self, mode: str) -> int:
        return sum(1 for r in self.requests if r.startswith(f"/{mode}/"))


@pytest.fixture
def mirror(monkeypatch):
    """A local mirror serving a tiny MNIST-like dataset whose checksums replace the canonical ones."""
    server = LocalMirror()
    server.files = dataset_files(n_train=20, n_test=10)
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in server.files.items()}
    monkeypatch.setitem(data.SHA256, "mnist", sums)
    monkeypatch.setattr(data_download, "DOWNLOAD_TIMEOUT", 5.0)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(timeout=5)


def test_download_then_load_from_cache(mirror, monkeypatch, isolated):
    monkeypatch.setenv("NPVAE_MIRRORS", f"{mirror.url}/good/")
    ds = load_dataset("mnist")
    assert ds.x_train.shape == (20, 16) and ds.x_test.shape == (10, 16)
    cache = isolated / ".cache" / "npvae" / "mnist"
    assert ds.source == str(cache)
    assert files_under(cache) == sorted(mirror.files)  # no temp files left
    for name, body in mirror.files.items():
        assert (cache / name).read_bytes() == body
    assert mirror.count("good") == 4
    again = load_dataset("mnist")  # served from the cache: the server sees nothing new
    assert mirror.count("good") == 4
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_download_goes_to_npvae_data_and_mirrors_argument(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "store"))
    ds = load_dataset("mnist", mirrors=[mirror.url + "/good"])
    assert files_under(tmp_path / "store" / "mnist") == sorted(mirror.files)
    assert len(ds.x_train) == 20


def test_checksum_mismatch_raises_and_keeps_nothing(mirror, isolated):
    url = f"{mirror.url}/corrupt/"
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        load_dataset("mnist", mirrors=[url])
    message = str(info.value)
    first = "train-images-idx3-ubyte.gz"
    assert first in message and url + first in message
    assert data.SHA256["mnist"][first] in message
    actual = hashlib.sha256(mirror.files[first][:-1] + bytes([mirror.files[first][-1] ^ 0xFF])).hexdigest()
    assert actual in message
    assert files_under(isolated / ".cache") == []


def test_short_transfer_raises_and_keeps_nothing(mirror, isolated):
    with pytest.raises(DownloadError, match=r"connection closed after \d+ of \d+ bytes"):
        load_dataset("mnist", mirrors=[f"{mirror.url}/short/"])
    assert mirror.count("short") == 1
    assert files_under(isolated / ".cache") == []


def test_404_falls_through_to_next_mirror(mirror, isolated):
    ds = load_dataset("mnist", mirrors=[f"{mirror.url}/missing/", f"{mirror.url}/short/", f"{mirror.url}/good/"])
    assert len(ds.x_test) == 10
    assert mirror.count("missing") == 4 and mirror.count("short") == 4 and mirror.count("good") == 4
    assert files_under(isolated / ".cache" / "npvae" / "mnist") == sorted(mirror.files)


def test_all_mirrors_failing_lists_each(mirror):
    bad = [f"{mirror.url}/missing/", "http://127.0.0.1:9/nothing-listens-here/"]
    with pytest.raises(DownloadError, match="from any mirror") as info:
        load_dataset("mnist", mirrors=bad)
    assert "404" in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_partial_cache_is_completed(mirror, monkeypatch, isolated):
    cache = isolated / ".cache" / "npvae" / "mnist"
    name = "t10k-labels-idx1-ubyte.gz"
    write_file(cache / name, mirror.files[name])
    monkeypatch.setenv("NPVAE_MIRRORS", f"{mirror.url}/good/")
    load_dataset("mnist")
    assert mirror.count("good") == 3
    assert files_under(cache) == sorted(mirror.files)


def test_mnist_split_downloads_only_the_test_set(mirror, monkeypatch, isolated):
    monkeypatch.setenv("NPVAE_MIRRORS", f"{mirror.url}/good/")
    x_train, x_test, y_train, y_test = mnist_split(n_train=7)
    assert x_train.shape == (7, 16) and x_test.shape == (3, 16)
    assert sorted(r.rsplit("/", 1)[1] for r in mirror.requests) == sorted(
        [IDX_NAMES["test_images"] + ".gz", IDX_NAMES["test_labels"] + ".gz"]
    )


# =========================================================================== user arrays


def test_user_npy_uint8_images_are_scaled_and_split(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 6, 5), dtype=np.uint8)
    images[0, 0, 0] = 255
    path = tmp_path / "mine.npy"
    np.save(path, images)
    ds = load_dataset(path, seed=1)
    assert ds.image_shape == (6, 5) and ds.x_train.shape == (40, 30) and ds.x_test.shape == (10, 30)
    assert ds.x_train.dtype == np.float32 and float(max(ds.x_train.max(), ds.x_test.max())) == 1.0
    assert (ds.y_train == -1).all() and (ds.y_test == -1).all() and ds.y_test.dtype == np.int64
    rows = np.concatenate([ds.x_train, ds.x_test]) * 255
    np.testing.assert_allclose(np.sort(rows.sum(1)), np.sort(images.reshape(50, -1).sum(1).astype(float)), rtol=1e-5)
    np.testing.assert_array_equal(load_dataset(str(path), seed=1).x_test, ds.x_test)
    assert not np.array_equal(load_dataset(path, seed=2).x_test, ds.x_test)


def test_user_npz_with_explicit_parts(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "parts.npz"
    np.savez(path, x_train=rng.random((12, 3)), y_train=np.arange(12) % 3, x_test=rng.random((5, 3)))
    ds = load_dataset(path)
    assert ds.x_train.shape == (12, 3) and ds.x_test.shape == (5, 3) and ds.image_shape is None
    assert ds.y_train.tolist() == (np.arange(12) % 3).tolist()
    assert (ds.y_test == -1).all()


def test_user_npz_single_array_and_bad_keys(tmp_path):
    single = tmp_path / "one.npz"
    np.savez(single, whatever=np.full((10, 4), 0.5))
    ds = load_dataset(single, test_fraction=0.3)
    assert ds.x_train.shape == (7, 4) and ds.x_test.shape == (3, 4)
    bad = tmp_path / "two.npz"
    np.savez(bad, a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=re.escape(str(bad)) + r".*found \['a', 'b'\]"):
        load_dataset(bad)


def test_user_csv_with_header_and_label_column(tmp_path):
    path = tmp_path / "table.csv"
    rows = ["p0,label,p1,p2"] + [f"{i % 5 / 4},{i % 2},{(i * 7) % 5 / 4},0.25" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(path, test_fraction=0.25)
    assert ds.x_train.shape == (15, 3) and ds.x_test.shape == (5, 3)
    assert set(np.concatenate([ds.y_train, ds.y_test]).tolist()) == {0, 1}
    assert np.bincount(ds.y_test).tolist() == [3, 2]  # labels known: stratified, ties to the first class


def test_user_csv_without_header_and_0_255(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("0,255,128\n1,2,3\n10,20,30\n40,50,60\n70,80,90\n")
    ds = load_dataset(path, test_fraction=0.2)
    assert ds.x_train.shape == (4, 3) and (ds.y_train == -1).all()
    assert np.isclose(max(ds.x_train.max(), ds.x_test.max()), 1.0)


def test_user_nan_values_are_counted(tmp_path):
    x = np.full((10, 4), 0.5)
    x[1, 2] = x[3, 0] = x[9, 3] = np.nan
    path = tmp_path / "holes.npy"
    np.save(path, x)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": 3 NaN values"):
        load_dataset(path)
    csv = tmp_path / "holes.csv"
    csv.write_text("a,b\n0.1,\n0.2,0.3\n")
    with pytest.raises(ValueError, match=re.escape(str(csv)) + ": 1 NaN values"):
        load_dataset(csv)


def test_user_out_of_range_values_name_the_range(tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, np.linspace(-0.5, 2.5, 40).reshape(10, 4))
    with pytest.raises(ValueError, match=re.escape(f"{path}: values range over [-0.5, 2.5]")):
        load_dataset(path)
    fractional = tmp_path / "frac.npy"
    np.save(fractional, np.linspace(0, 200.5, 40).reshape(10, 4))
    with pytest.raises(ValueError, match=re.escape("values range over [0, 200.5]")):
        load_dataset(fractional)
    inf = tmp_path / "inf.npy"
    np.save(inf, np.array([[0.0, np.inf], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="1 infinite values"):
        load_dataset(inf)


def test_user_1d_array_is_rejected(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.zeros(10))
    with pytest.raises(ValueError, match="expected a 2-D array"):
        load_dataset(path)


# =========================================================================== binarisation


def test_static_binarisation_is_fixed_by_seed():
    a = load_dataset("digits", binarize="static", seed=5)
    b = load_dataset("digits", binarize="static", seed=5)
    c = load_dataset("digits", binarize="static", seed=6)
    assert set(np.unique(a.x_train).tolist()) == {0.0, 1.0} and a.x_train.dtype == np.float32
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    grey = load_dataset("digits", seed=5)
    np.testing.assert_array_equal(a.y_train, grey.y_train)  # binarising does not move the split
    assert abs(a.x_train.mean() - grey.x_train.mean()) < 0.01  # Bernoulli(x) keeps the mean
    assert (a.x_train[grey.x_train == 0] == 0).all() and (a.x_train[grey.x_train == 1] == 1).all()


def test_threshold_binarisation():
    grey = load_dataset("digits")
    ds = load_dataset("digits", binarize="threshold")
    np.testing.assert_array_equal(ds.x_train, (grey.x_train > 0.5).astype(np.float32))
    with pytest.raises(ValueError, match="binarize_batch"):
        load_dataset("digits", binarize="dynamic")
    with pytest.raises(ValueError, match="binarize must be"):
        load_dataset("digits", binarize="sometimes")


def test_binarize_batch_draws_fresh_samples():
    x = np.full((200, 50), 0.3, dtype=np.float32)
    x[:, 0], x[:, 1] = 0.0, 1.0
    rng = np.random.default_rng(0)
    first, second = binarize_batch(x, rng), binarize_batch(x, rng)
    assert first.dtype == np.float32 and first.shape == x.shape
    assert set(np.unique(first).tolist()) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    assert (first[:, 0] == 0).all() and (first[:, 1] == 1).all()
    assert abs(first[:, 2:].mean() - 0.3) < 0.02
    np.testing.assert_array_equal(binarize_batch(x, np.random.default_rng(1)), binarize_batch(x, 1))
    assert binarize_batch(x.astype(np.float64), 0).dtype == np.float64
