"""Each notebook's stored, executed copy is the one its source gives.

The notebooks' sources are the jupytext MyST files notebooks/NN_name.md. Each checks its
own derivations with `assert`s, so "runs without error" means "every numerical check in it
passed"; tests/test_book.py runs every one of them afresh when it builds the book (a cell
that raises fails the build, naming it), and tests/mutations.py shows the checks fail when
the math is wrong. The .ipynb beside each source is built from it, executed
(`make -C notebooks`), so a reader browsing the repository sees the outputs: it must hold
the source's cells, every code cell run, no error, and the figures its cells drew.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

import notebook_runner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))
IDS = [p.stem for p in SOURCES]


def test_there_are_at_least_twelve_notebooks():
    assert len(SOURCES) >= 12, [p.name for p in SOURCES]


@pytest.mark.parametrize("path", SOURCES, ids=IDS)
def test_the_stored_notebook_is_its_source_executed(path):
    import nbformat

    built = path.with_suffix(".ipynb")
    assert built.exists(), f"{built.name} is missing: build it with `make -C notebooks`"
    stored = nbformat.read(str(built), as_version=4)
    source = notebook_runner.read_source(path)
    assert [(c.cell_type, c.source) for c in stored.cells] == \
        [(c.cell_type, c.source) for c in source.cells], \
        f"{built.name} differs from {path.name}: rebuild it with `make -C notebooks`"
    for i, cell in enumerate(stored.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"{built.name} cell {i} was not run"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{built.name} cell {i} shows an error: {errors[0].ename}"
    drew = "plt." in "".join(c.source for c in source.cells if c.cell_type == "code")
    images = sum("image/png" in o.get("data", {}) for c in stored.cells if c.cell_type == "code"
                 for o in c.outputs)
    assert images or not drew, f"{built.name} shows no figure: build it with the inline backend"
