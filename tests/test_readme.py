"""The README's Python example runs as written (its imports and calls follow the package)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_example():
    text = (REPO / "README.md").read_text()
    start = text.index("```python", text.index("## Python example")) + len("```python")
    return text[start:text.index("```", start)]


def test_readme_python_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(python_example())
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
