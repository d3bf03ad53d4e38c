"""The README's Python examples run as written (their imports and calls follow the package)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


EXAMPLES = ["## Python example", "### scikit-learn: `VAEEstimator`"]  # the headings above them


def python_example(heading):
    """The first python code block after `heading` in the README."""
    text = (REPO / "README.md").read_text()
    start = text.index("```python", text.index(heading)) + len("```python")
    return text[start:text.index("```", start)]


@pytest.mark.parametrize("heading", EXAMPLES)
def test_readme_python_example_runs(tmp_path, heading):
    script = tmp_path / "example.py"
    script.write_text(python_example(heading))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
