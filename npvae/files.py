"""Opening and writing files safely: regular files only, atomic writes, one file mode.

* `open_regular(path)` opens a file for reading only when it is a regular file: a FIFO, a
  device or a folder is refused with a one-line OSError naming it, and the check cannot
  hang (the file is opened without blocking, then checked with fstat, so a FIFO with no
  writer is refused instead of waiting for one).
* `atomic_write(path, write)` writes through a temporary file beside the target
  (``.tmp-<random>-<name>``), flushed to disk, then renamed over it: a reader sees the old
  file or the new one, never half of one. On any failure the temporary file is removed;
  one left by a killed process is removed by `remove_temporaries` on the next start.
  The file gets the mode an ordinary new file gets (0666 less the umask), as a plain
  ``open(path, "w")`` would give it.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def _kind(mode):
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return word
    return "not a regular file"


def open_regular(path):
    """A binary file object open for reading `path`, which must be a regular file.

    FileNotFoundError when it does not exist; IsADirectoryError / OSError naming what it
    is otherwise ("... is a FIFO (named pipe), not a regular file").
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            error = IsADirectoryError if stat.S_ISDIR(mode) else OSError
            raise error(f"{path} is {_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def new_file_mode():
    """The mode a new file gets from open(): 0666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file beside `path`, then rename it onto `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix="-" + os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), new_file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:
            err.filename = path  # a write through the file object names no file
        raise


def remove_temporaries(folder):
    """Remove the temporary files atomic_write left in `folder` (and its subfolders) when a
    process was killed mid-write; returns the paths removed. Call it only while holding
    the folder's lock, so no writer still owns one."""
    removed = []
    for p in Path(folder).rglob(TEMP_PREFIX + "*"):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed
