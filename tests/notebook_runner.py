"""Run a notebook's text source (notebooks/NN_name.md, a jupytext MyST file) top to bottom
in a fresh kernel of this interpreter; a cell that raises fails the run.

    python tests/notebook_runner.py notebooks/06_adam.md [--pythonpath DIR] [--write OUT.ipynb]

Used by tests/test_notebooks.py (every notebook runs), by the mutation harness
(tests/mutations.py: the notebook on a topic must fail when a mistake is planted in
a copy of the package put first on the kernel's path with --pythonpath), and by anyone
editing a notebook. The kernel runs in a temporary folder with matplotlib's inline backend
(figures become outputs), and reads MNIST through $NPVAE_DATA (set from $NPVAE_SHARED_DATA when that is given).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNEL = "python3"
CELL_TIMEOUT = 600


# Names that jupyter_client replaces by sys.executable when it launches a kernel.
_SELF = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
_KERNELSPEC_PREFIX = None


def _spec_runs_this_python():
    """True if the 'python3' kernelspec that Jupyter would pick starts this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    except NoSuchKernel:
        return False
    if not argv:
        return False
    return argv[0] in _SELF or os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


def _jupyter_path():
    """A JUPYTER_PATH whose 'python3' kernel is this interpreter: the one Jupyter finds if
    it already is, else one installed once per process in a temporary prefix (Jupyter
    searches JUPYTER_PATH before every other location)."""
    global _KERNELSPEC_PREFIX
    if _spec_runs_this_python():
        return None
    if _KERNELSPEC_PREFIX is None:
        from ipykernel.kernelspec import install

        _KERNELSPEC_PREFIX = tempfile.mkdtemp(prefix="npvae-kernelspec-")
        install(kernel_name=KERNEL, prefix=_KERNELSPEC_PREFIX)  # argv: sys.executable
    share = os.path.join(_KERNELSPEC_PREFIX, "share", "jupyter")
    return os.pathsep.join(filter(None, [share, os.environ.get("JUPYTER_PATH")]))


def kernel_environment(pythonpath=None):
    """The environment variables the kernel should see (it inherits this process's)."""
    # Figures go into the notebook's outputs (the inline backend), whatever MPLBACKEND the
    # caller has (CI sets Agg for the library's own plotting).
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    jupyter_path = _jupyter_path()
    if jupyter_path:
        env["JUPYTER_PATH"] = jupyter_path
    shared = os.environ.get("NPVAE_SHARED_DATA")
    if shared and "NPVAE_DATA" not in os.environ:
        env["NPVAE_DATA"] = shared  # holds mnist/
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    return env


def read_source(path):
    import jupytext

    return jupytext.read(str(path), fmt="md:myst")


def run(path, pythonpath=None, workdir=None):
    """Execute the notebook at `path`; returns (the executed notebook, seconds).
    Raises nbclient's CellExecutionError, naming the cell, when a cell raises."""
    import nbclient

    nb = read_source(path)
    saved = dict(os.environ)
    os.environ.update(kernel_environment(pythonpath))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                                             resources={"metadata": {"path": workdir or tmp}})
            start = time.perf_counter()
            client.execute()
            return nb, time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("--pythonpath", default=None,
                        help="a folder put first on the kernel's import path")
    parser.add_argument("--write", metavar="IPYNB", default=None,
                        help="save the executed notebook, outputs included, to this file")
    args = parser.parse_args(argv)
    nb, seconds = run(args.notebook, args.pythonpath)
    print(f"{args.notebook}: every cell ran ({seconds:.1f} s)")
    if args.write:
        import nbformat

        nb.metadata.pop("jupytext", None)
        nbformat.write(nb, args.write)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    sys.exit(main())
