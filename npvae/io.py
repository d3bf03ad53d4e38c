"""Save and load models as .npz archives.

A save file holds
  ``__npvae__``   the format version (an int64 scalar),
  ``__config__``  the model's config as a JSON object in a string (a unicode array, not a pickle),
  ``param/<name>`` one array per parameter, e.g. ``param/encoder.0.W``,
  ``extra/<key>``  optional arrays a caller adds (a checkpoint's optimizer state, ...).

Writing is atomic (npvae.files.atomic_write): a crash never leaves a half-written file
under the final name.

Reading never trusts the file. `SaveFile` opens only a regular file, tells an .npz archive
by its first bytes (so random bytes are "not an .npz archive", and only a real pickle is
called one), and reads every member's .npy header before any data: the array it declares
must fit the zip entry's uncompressed size exactly and stay under npvae's byte cap
(npvae.limits), and no member may need pickle. The config is read next, the model it
describes is built (its parameter count capped), and only then are the parameters read,
each after its declared shape has been compared with the model's. So a file crafted to
inflate to gigabytes, or a config asking for 10^12 parameters, is refused before anything
of that size is allocated. Every refusal is a ValueError naming the file and the problem.
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import npyfile
from .files import atomic_write, open_regular

__all__ = ["save", "load", "SaveFile", "read_archive", "load_into", "model_from_config",
           "atomic_write", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MARKER, _CONFIG, _PARAM, _EXTRA = "__npvae__", "__config__", "param/", "extra/"
_CONFIG_BYTES = 1 << 20  # a model config is a few hundred bytes of JSON


def save(model, path, extra=None):
    """Write `model` (and optional extra arrays) to `path` atomically.

    The file is an .npz archive holding the format version, the model's config as JSON
    and one array per parameter (see the module docstring); no pickles.

    Parameters
    ----------
    model : VAE, ConditionalVAE or HierarchicalVAE
        The model to save: its config and its parameters, in its dtype.
    path : str or os.PathLike
        The file to write (conventionally ``*.npz``). It is written under a temporary
        name and renamed into place, so a crash never leaves half a file.
    extra : dict of str to array_like, optional
        Further arrays to store beside the model (a checkpoint's optimizer state, ...).
    """
    arrays = {_MARKER: np.array(FORMAT_VERSION, dtype=np.int64),
              _CONFIG: np.array(json.dumps(model.get_config()))}
    for name, value in model.params.items():
        arrays[_PARAM + name] = value
    for key, value in (extra or {}).items():
        arrays[_EXTRA + key] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


class SaveFile:
    """An open npvae save file whose arrays are read on request, each after its size check.

    Opening reads the headers and the config (a dict: `config`); `param_names` and
    `extra_names` list what the file holds, `declared(name)` gives a member's (shape,
    dtype) before it is read, `read(name)` reads it. Use as a context manager.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = open_regular(self.path)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _fail(self, problem):
        raise ValueError(f"{self.path}: {problem}") from None

    def _open(self):
        start = self._file.read(8)
        self._file.seek(0)
        if not start.startswith(npyfile.ZIP_MAGIC):
            if start.startswith(npyfile.NPY_MAGIC):
                self._fail("it holds a single .npy array, not an npvae save file (an .npz archive)")
            if npyfile.looks_pickled(start):
                self._fail("it is a Python pickle, which npvae never writes and will not load")
            self._fail("not an npvae save file: not an .npz archive (it does not start as a zip file)")
        self._zip = npyfile.open_zip(self._file, self.path)
        # Headers only; "U" for the config's JSON string. Each is checked against the cap
        # and its zip entry, and must name an .npy member.
        self._members = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                self._fail(f"member {info.filename!r} is not an .npy array: not an npvae save file")
            header = npyfile.member_header(self._zip, info, self.path, kinds="buifU")
            self._members[npyfile.member_key(info.filename)] = (info, header)
        if _MARKER not in self._members or _CONFIG not in self._members:
            self._fail("no npvae format marker: it is not an npvae save file")
        version = self.read(_MARKER)
        if version.shape != () or version.dtype.kind not in "iu":
            self._fail(f"the format marker is not an integer (it is {version.dtype} {version.shape})")
        if int(version) > FORMAT_VERSION:
            self._fail(f"save format version {int(version)} is newer than this npvae reads "
                       f"({FORMAT_VERSION}); upgrade npvae")
        self.config = self.read_json(_CONFIG, "the model config", _CONFIG_BYTES)
        if not isinstance(self.config, dict):
            self._fail(f"the model config is a JSON {type(self.config).__name__}, not an object")
        self.param_names = [n[len(_PARAM):] for n in self._members if n.startswith(_PARAM)]
        self.extra_names = [n[len(_EXTRA):] for n in self._members if n.startswith(_EXTRA)]

    def declared(self, name):
        """(shape, dtype) of member `name` (e.g. "param/encoder.0.W"), read from its header."""
        header = self._members[name][1]
        return header.shape, header.dtype

    def read(self, name):
        """The array stored as `name` (its size was checked when the file was opened)."""
        info, header = self._members[name]
        return npyfile.read_member(self._zip, info, header, self.path)

    def read_json(self, name, what, max_bytes=None):
        """The JSON value stored as a string array `name`; ValueError naming `what` otherwise."""
        shape, dtype = self.declared(name)
        if shape != () or dtype.kind != "U":
            self._fail(f"{what} is not a string (it is {dtype} {shape})")
        if max_bytes is not None and dtype.itemsize > max_bytes:
            self._fail(f"{what} is {dtype.itemsize:,} bytes long; npvae writes at most "
                       f"{max_bytes:,}")
        try:
            return json.loads(str(self.read(name)))
        except json.JSONDecodeError as err:
            self._fail(f"{what} is not valid JSON ({err})")

    def has_extra(self, key):
        return _EXTRA + key in self._members

    def declared_extra(self, key):
        return self.declared(_EXTRA + key)

    def read_extra(self, key):
        return self.read(_EXTRA + key)

    def read_params(self, model):
        """The parameters, checked against `model` (names and shapes before reading, then
        dtype and finiteness); a dict name -> array ready for load_into."""
        names, expected = set(self.param_names), {k: v.shape for k, v in model.params.items()}
        missing, unknown = sorted(set(expected) - names), sorted(names - set(expected))
        if missing or unknown:
            self._fail(f"parameters do not match the model's config (missing {missing}, "
                       f"unexpected {unknown})")
        for name, shape in expected.items():
            found, dtype = self.declared(_PARAM + name)
            if found != shape:
                self._fail(f"parameter {name} has shape {found}, but the config gives {shape}")
            if dtype.kind != "f":
                self._fail(f"parameter {name} has dtype {dtype}, not floating point")
        return {name: self.read(_PARAM + name) for name in expected}

    def build_model(self):
        """The model the file's config describes (parameters not yet loaded)."""
        try:
            return model_from_config(self.config)
        except (TypeError, KeyError, ValueError, AttributeError) as err:
            self._fail(f"the saved config cannot build a model ({err})")

    def load_model(self):
        """The model with its saved parameters."""
        model = self.build_model()
        load_into(model, self.read_params(model), self.path)
        return model

    def close(self):
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_archive(path):
    """(config dict, params dict, extra dict) of a save file, with every check of SaveFile
    (the parameters checked against the model its config builds)."""
    with SaveFile(path) as f:
        params = f.read_params(f.build_model())
        return f.config, params, {key: f.read_extra(key) for key in f.extra_names}


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
    if not isinstance(config, dict):
        raise ValueError(f"a model config is a dict, got {type(config).__name__}")
    kind = config.get("model", "vae")
    if not isinstance(kind, str) or kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}")
    return classes[kind].from_config(config)


def load(path):
    """Rebuild the model saved at `path` (a VAE or any other npvae model).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `save` (a run's ``model.npz`` or ``best.npz`` too).

    Returns
    -------
    VAE, ConditionalVAE or HierarchicalVAE
        The model the file's config describes, with its saved parameters and dtype.

    Raises
    ------
    ValueError
        Naming the file and the problem, for anything that is not a sound npvae save
        file: not an .npz archive, a pickle, a member larger than it declares or than
        npvae's caps, a broken config, a parameter of the wrong shape.
    """
    with SaveFile(path) as f:
        return f.load_model()
