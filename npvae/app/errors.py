"""How the command line reports what went wrong: one line, never a traceback.

`describe(err)` words an OSError as "<file>: <what the system said>" (a full disk, a
read-only folder, a missing file). `write_report(err)` writes an unexpected error's full
traceback, with the command and versions, to a file in the temporary folder and returns
its path, so the one line the user sees can say where the details are.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback


def describe(err):
    """An OSError in one line: the file(s) it concerns and the system's words for it."""
    what = err.strerror or str(err)
    files = [f for f in (err.filename, getattr(err, "filename2", None)) if f is not None]
    return f"{' -> '.join(map(os.fspath, files))}: {what}" if files else what


def write_report(err):
    """Write the traceback of `err` (and the command line, Python and NumPy versions) to
    $TMPDIR/npvae-error-<time>-<pid>.txt; returns the path, or a note if it cannot."""
    import numpy as np

    from .. import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(tempfile.gettempdir(), f"npvae-error-{stamp}-{os.getpid()}.txt")
    lines = [f"npvae {__version__}, Python {platform.python_version()}, NumPy {np.__version__}, "
             f"{platform.platform()}\n", f"command: {' '.join(sys.argv)}\n\n",
             *traceback.format_exception(type(err), err, err.__traceback__)]
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
    except OSError:
        return "(no report: the temporary folder is not writable)"
    return path
