"""The package, the tests, the benchmarks and every notebook's code cells pass the same
lint: ruff's pyflakes rules (F: undefined or unused names, redefinitions, ...) and syntax
errors (E9). A notebook's cells are linted as the one Python file jupytext makes of them."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RULES = ["--select", "E9,F", "--no-cache", "--output-format", "concise"]


def _ruff(*paths):
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the test extra)")
    return subprocess.run([ruff, "check", *RULES, *map(str, paths)], capture_output=True, text=True)


def test_the_code_passes_the_lint():
    done = _ruff(REPO / "npvae", REPO / "tests", REPO / "benchmarks", REPO / "docs")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_notebooks_code_cells_pass_the_lint(tmp_path):
    jupytext = pytest.importorskip("jupytext")
    sources = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))
    assert sources
    for source in sources:
        nb = jupytext.read(str(source), fmt="md:myst")
        (tmp_path / f"{source.stem}.py").write_text(jupytext.writes(nb, fmt="py:percent"))
    done = _ruff(tmp_path)
    assert done.returncode == 0, done.stdout.replace(str(tmp_path) + "/", "notebooks/") + done.stderr
