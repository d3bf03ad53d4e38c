"""Data for npvae: the digits set, sprites, MNIST and Fashion-MNIST, and a user's own arrays.

Start with :func:`load_dataset` (any dataset, as a :class:`Dataset`) or :func:`mnist_split` (the
MNIST test set split 8,000 / 2,000). The package is laid out by concern:

* :mod:`npvae.data.datasets` -- the :class:`Dataset` record, where dataset folders are looked for,
  the loaders, binarisation, :func:`load_dataset` and :func:`mnist_split`;
* :mod:`npvae.data.idx` -- reading IDX files (raw or gzip) and the checks of their header;
* :mod:`npvae.data.download` -- verified, atomic downloads from the public mirrors;
* :mod:`npvae.data.arrays` -- reading and checking ``.npy`` / ``.npz`` / ``.csv`` files;
* :mod:`npvae.data.splits` -- seeded stratified and in-order train / test splits;
* :mod:`npvae.data.sprites` -- binary images of shapes over a full grid of known factors
  (shape, scale, orientation, position), drawn in NumPy, for measuring disentanglement.

Settings such as ``SYSTEM_DATA_DIRS`` or ``DOWNLOAD_TIMEOUT`` live in their own module: rebind them
there (``npvae.data.datasets.SYSTEM_DATA_DIRS = [...]``); the dicts ``MIRRORS`` and ``SHA256`` can
be edited in place through this package.
"""
from .arrays import to_unit_range
from .datasets import (
    KNOWN_DATASETS,
    SYSTEM_DATA_DIRS,
    USER_ARRAY_SUFFIXES,
    Dataset,
    binarize_batch,
    binarize_threshold,
    dataset_dirs,
    load_dataset,
    locate_idx_dir,
    mnist_split,
)
from .download import (
    DOWNLOAD_CHUNK,
    DOWNLOAD_TIMEOUT,
    MIRRORS,
    SHA256,
    DownloadError,
    download_dataset,
    download_file,
    mirror_urls,
)
from .idx import (
    GZIP_MAGIC,
    IDX_DTYPES,
    IDX_FILES,
    MAX_IDX_DIMS,
    find_idx_files,
    load_idx_pair,
    parse_idx,
    read_idx,
)
from .splits import ordered_split, split_indices
from .sprites import SHAPES, draw_sprite, factor_sizes, render_sprites, sprite_factors

__all__ = [
    "DOWNLOAD_CHUNK",
    "DOWNLOAD_TIMEOUT",
    "GZIP_MAGIC",
    "IDX_DTYPES",
    "IDX_FILES",
    "KNOWN_DATASETS",
    "MAX_IDX_DIMS",
    "MIRRORS",
    "SHA256",
    "SHAPES",
    "SYSTEM_DATA_DIRS",
    "USER_ARRAY_SUFFIXES",
    "Dataset",
    "DownloadError",
    "binarize_batch",
    "binarize_threshold",
    "dataset_dirs",
    "download_dataset",
    "download_file",
    "draw_sprite",
    "factor_sizes",
    "find_idx_files",
    "load_dataset",
    "load_idx_pair",
    "locate_idx_dir",
    "mirror_urls",
    "mnist_split",
    "ordered_split",
    "parse_idx",
    "read_idx",
    "render_sprites",
    "split_indices",
    "sprite_factors",
    "to_unit_range",
]
