"""The sprites study (docs/studies/): its spec is a valid sweep, its script turns a real
sweep of the spec's settings into the table and figures, and the README and the book show
the same table.

The study itself takes about 10 minutes; here it runs at one epoch, one beta and one seed
per objective, which checks the pipeline, not the numbers."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

from npvae.app.cli import main
from npvae.app.sweep import load_spec

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "docs" / "studies"
PNG = b"\x89PNG\r\n\x1a\n"


def study_script():
    spec = importlib.util.spec_from_file_location("sprites_beta", STUDY / "sprites_beta.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text):
    """The rows of the study's table (objective and beta first) in a markdown text."""
    return re.findall(r"^\| (?:elbo|tcvae) \|.*\|$", text, flags=re.M)


def test_the_study_spec_is_thirty_runs_of_both_objectives():
    spec = json.loads((STUDY / "sprites-beta.json").read_text())
    runs = load_spec(spec, "sprites-beta.json").runs
    assert len(runs) == 30
    assert {r.config.objective for r in runs} == {"elbo", "tcvae"}
    assert {r.config.beta for r in runs} == {1, 2, 4, 8, 16}
    assert all(r.config.dataset == "sprites" for r in runs)


def test_readme_and_book_show_the_same_table():
    readme = table_rows((REPO / "README.md").read_text())
    book = table_rows((REPO / "docs" / "sprites-study.md").read_text())
    assert len(readme) == 10 and book == readme


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """The study's spec at 1 epoch, beta 4, seed 0, both objectives, through `npvae sweep`."""
    folder = tmp_path_factory.mktemp("study")
    spec = json.loads((STUDY / "sprites-beta.json").read_text())
    spec["base"].update(epochs=1, hidden=[64])
    spec["grid"].update(beta=[4], seed=[0])
    spec["k"] = 5
    (folder / "spec.json").write_text(json.dumps(spec))
    out = folder / "out"
    assert main(["sweep", str(folder / "spec.json"), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    return out


def test_the_script_summarises_a_sweep_of_the_spec(small_sweep, tmp_path, capsys):
    script = study_script()
    script.main([str(small_sweep), "--figures", str(tmp_path)])
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert [r.split(" | ")[:3] for r in rows] == [["| elbo", "4", "1"], ["| tcvae", "4", "1"]]
    for row in rows:  # every column a number, and the MIG and FactorVAE score in [0, 1]
        cells = [c.strip() for c in row.strip("|").split("|")[3:]]
        means = [float(c.split(" ± ")[0]) for c in cells]
        assert len(means) == len(script.COLUMNS)
        assert 0 <= means[0] <= 1 and 0 <= means[1] <= 1
    best = max(script.read_rows(small_sweep), key=lambda r: r["mig"])["run"]
    assert f"(run {best})" in printed
    for name in ("sprites-beta.png", "sprites-traversals.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert ((tmp_path / "sprites-traversals.png").read_bytes()
            == (small_sweep / "runs" / best / "figures" / "traversals.png").read_bytes())
