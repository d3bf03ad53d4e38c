"""One writer per run folder: an exclusive lock held for the life of a train or a resume.

The lock is `fcntl.flock` on ``RUN/.lock``, a file that holds the holder's pid, host and
start time. The kernel releases a flock when its process ends, however it ends (kill -9
included), so a lock left by a dead process is simply taken over by the next writer; the
file's text only names the holder in the message a second writer gets:

    npvae: runs/r is in use by npvae process 4242 on host-a since 2026-12-02 10:31:07
    (runs/r/.lock); wait for it to finish, or stop it

The lock file is never deleted: deleting it would let a writer that opened the old file
and one that created a new one both hold "the" lock.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from ..files import new_file_mode
from .config import UsageError

LOCK_FILE = ".lock"


class FolderInUse(UsageError):
    """Another process holds the run folder's lock."""


class RunLock:
    """The lock of run folder `folder`; `acquire()` takes it or raises FolderInUse.

    A context manager: `with RunLock(path).acquire(): ...` releases it on the way out.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd = None

    def acquire(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         new_file_mode())
        except OSError as err:
            raise UsageError(f"cannot lock run folder {self.folder}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise self._in_use(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return self

    def _in_use(self, holder):
        who = f"npvae process {holder}" if holder else "another npvae process"
        return FolderInUse(f"{self.folder} is in use by {who} ({self.path}); wait for it to "
                           f"finish, or stop it")

    def refuse_if_held(self):
        """FolderInUse if another process holds the lock now; creates nothing (a folder
        without a lock file is held by no one)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(_read(fd)) from None
        finally:
            os.close(fd)

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty file: nobody holds it
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read(fd):
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
