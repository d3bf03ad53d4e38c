"""Save and load models as .npz archives.

A save file holds
  ``__npvae__``   the format version (an int64 scalar),
  ``__config__``  the model's config as a JSON string (a unicode array, not a pickle),
  ``param/<name>`` one array per parameter, e.g. ``param/encoder.0.W``,
  ``extra/<key>``  optional arrays a caller adds (a checkpoint's optimizer state, ...).
Files are read with ``allow_pickle=False`` and written atomically: the archive goes to a
temporary file in the destination folder, is flushed to disk, then renamed over the
target, so a crash never leaves a half-written file under the final name.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT_VERSION = 1
_MARKER, _CONFIG, _PARAM, _EXTRA = "__npvae__", "__config__", "param/", "extra/"


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file beside `path`, then rename it onto `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(model, path, extra=None):
    """Write `model` (and optional extra arrays, a dict key -> array) to `path` atomically."""
    arrays = {_MARKER: np.array(FORMAT_VERSION, dtype=np.int64),
              _CONFIG: np.array(json.dumps(model.get_config()))}
    for name, value in model.params.items():
        arrays[_PARAM + name] = value
    for key, value in (extra or {}).items():
        arrays[_EXTRA + key] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_archive(path):
    """(config dict, params dict, extra dict) from a save file, with every check done.

    Raises ValueError naming the file and the problem for anything that is not a complete,
    pickle-free npvae save of a supported format version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            names = list(archive.files)
            if _MARKER not in names or _CONFIG not in names:
                raise ValueError("no npvae format marker: it is not an npvae save file")
            arrays = {name: archive[name] for name in names}
    except ValueError as err:
        msg = str(err)
        if "pickle" in msg.lower():
            msg = "it carries pickled objects, which npvae never writes and will not load"
        raise ValueError(f"{path}: {msg}") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable npvae save (truncated or not an .npz "
                         f"archive: {err})") from None

    version = int(arrays[_MARKER])
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: save format version {version} is newer than this npvae "
                         f"reads ({FORMAT_VERSION}); upgrade npvae")
    try:
        config = json.loads(str(arrays[_CONFIG]))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the model config is not valid JSON ({err})") from None
    params = {k[len(_PARAM):]: v for k, v in arrays.items() if k.startswith(_PARAM)}
    extra = {k[len(_EXTRA):]: v for k, v in arrays.items() if k.startswith(_EXTRA)}
    return config, params, extra


def load_into(model, params, path="<params>"):
    """Copy a dict of arrays into model.params after checking names, shapes and values."""
    missing = sorted(set(model.params) - set(params))
    unknown = sorted(set(params) - set(model.params))
    if missing or unknown:
        raise ValueError(f"{path}: parameters do not match the model's config "
                         f"(missing {missing}, unexpected {unknown})")
    for name, value in params.items():
        target = model.params[name]
        if value.shape != target.shape:
            raise ValueError(f"{path}: parameter {name} has shape {value.shape}, but the "
                             f"config gives {target.shape}")
        if value.dtype.kind != "f":
            raise ValueError(f"{path}: parameter {name} has dtype {value.dtype}, not floating point")
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: parameter {name} contains NaN or inf")
    for name, value in params.items():
        model.params[name][...] = value


def model_from_config(config):
    """Build the model class named by config["model"] ("vae" when absent) from its config."""
    from .models.conditional import ConditionalVAE
    from .models.hierarchical import HierarchicalVAE
    from .models.vae import VAE

    classes = {"vae": VAE, "hierarchical": HierarchicalVAE, "conditional": ConditionalVAE}
    kind = config.get("model", "vae")
    if kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}")
    return classes[kind].from_config(config)


def load(path):
    """Rebuild the model saved at `path` (a VAE or any other npvae model)."""
    config, params, _ = read_archive(path)
    try:
        model = model_from_config(config)
    except (TypeError, KeyError, ValueError) as err:
        raise ValueError(f"{os.fspath(path)}: the saved config cannot build a model ({err})") from None
    load_into(model, params, os.fspath(path))
    return model
