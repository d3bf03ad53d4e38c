"""Build small IDX files for tests: the bytes, MNIST-like image/label sets, and dataset folders."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# NumPy kind/size -> IDX type code (the third byte of the magic number).
_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array) -> bytes:
    """Encode an array as IDX: magic (0, 0, type code, ndim), big-endian uint32 dims, big-endian data."""
    array = np.asarray(array)
    key = f"{array.dtype.kind}{array.dtype.itemsize}"
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def gzip_bytes(data: bytes) -> bytes:
    """gzip-compress bytes with a fixed timestamp, so the output (and its hash) is reproducible."""
    return gzip.compress(data, mtime=0)


def write_file(path, data: bytes) -> Path:
    """Write bytes to path (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_images(n: int, seed: int = 0, side: int = 4):
    """n random uint8 images (n, side, side) and labels (n,) in 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def dataset_files(n_train: int, n_test: int, seed: int = 0, side: int = 4) -> dict:
    """The four .gz files of a tiny MNIST-like dataset: file name -> gz bytes (n_train=0: t10k only)."""
    out = {}
    if n_train:
        images, labels = fake_images(n_train, seed, side)
        out[IDX_NAMES["train_images"] + ".gz"] = gzip_bytes(idx_bytes(images))
        out[IDX_NAMES["train_labels"] + ".gz"] = gzip_bytes(idx_bytes(labels))
    images, labels = fake_images(n_test, seed + 1, side)
    out[IDX_NAMES["test_images"] + ".gz"] = gzip_bytes(idx_bytes(images))
    out[IDX_NAMES["test_labels"] + ".gz"] = gzip_bytes(idx_bytes(labels))
    return out


def write_dataset_dir(directory, n_train: int, n_test: int, seed: int = 0, side: int = 4) -> Path:
    """Write a tiny MNIST-like dataset's .gz files into directory; return the directory."""
    directory = Path(directory)
    for name, data in dataset_files(n_train, n_test, seed, side).items():
        write_file(directory / name, data)
    return directory
