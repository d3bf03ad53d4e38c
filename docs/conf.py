"""Sphinx configuration of the npvae book.

Build it from the repository root (after ``pip install -e ".[docs]"``)::

    python -m sphinx -b html docs docs/_build/html

What this file arranges, and why:

* The notebooks stay where they are. Their MyST sources, ``notebooks/NN_name.md``, are
  what people edit; Sphinx only reads documents inside its source folder (``docs/``),
  so this file makes ``docs/notebooks`` a relative symlink to ``../notebooks`` before the
  build reads anything (`_link_notebooks`). The symlink is made anew in a fresh clone,
  nothing is copied, and an error message or a "show source" link names the real file.
  Where symlinks cannot be made (Windows without developer mode), the sources are copied
  into a real ``docs/notebooks`` folder instead, refreshed at every build. ``docs/notebooks``
  is a build artefact either way: it belongs in ``.gitignore``.
* Only the numbered sources are pages: ``include_patterns`` takes ``notebooks/[0-9][0-9]_*.md``,
  so the executed ``.ipynb`` copies beside them, the Makefile and anything else there
  are never read. index.md's toctree globs the same pattern, so a new notebook joins the
  reading order by its number.
* myst-nb executes every notebook at build time through jupyter-cache
  (``nb_execution_mode = "cache"``; the cache is ``docs/_build/.jupyter_cache`` for the
  command above, i.e. beside the output folder): a notebook runs again only when one of
  its code cells changed (not when the environment does: after changing what the kernels
  see, delete the cache). A cell that raises fails the build, and the log shows its
  traceback. Each kernel starts in a temporary folder, with matplotlib's headless inline
  backend (never a window; Agg, which tests/notebook_runner.py uses, would leave the pages
  without figures), this checkout first on its import path, and ``$NPVAE_DATA`` taken
  from ``$NPVAE_SHARED_DATA`` when only the latter is set (as tests/notebook_runner.py
  does), so the MNIST notebook finds the data without a download.
* Relative links that a notebook makes to the docs (``../docs/notation.md``, right when the
  file is read from ``notebooks/``) are rewritten at read time to name the same page from
  the book's root (``/notation.md``), so they resolve however docs/notebooks is made
  (`_retarget_notebook_links`).
* Offline math: MathJax is served from the site itself, never from a CDN. The build takes
  a local MathJax (`_find_mathjax`: ``$NPVAE_MATHJAX``, then the ``mathjax`` npm package in
  ``docs/node_modules`` or ``./node_modules`` (MathJax 3), then Debian's ``libjs-mathjax``
  in /usr/share/javascript/mathjax (MathJax 2)), copies the files a page needs into
  ``_static/mathjax/`` of the output when the build finishes, and points ``mathjax_path``
  at that copy. An HTML build without any of them fails at once, saying what to install.
* The theme is furo, which ships its fonts, styles and scripts in its pip package.
* The command line reference (cli.md) is generated from ``npvae.app.cli.build_parser()``
  by the small directive in ``docs/_ext/npvae_cli.py``; the API reference (api.md) is
  autodoc with napoleon reading the numpydoc sections of the docstrings.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.md"

# autodoc and the CLI directive import npvae from this checkout, and so do the kernels.
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(DOCS / "_ext"))

# ------------------------------------------------------------------ project

project = "npvae"
author = "the npvae authors"
copyright = "the npvae authors"
try:
    from npvae import __version__ as release
except ImportError:  # autodoc will say what is missing
    release = ""
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "npvae_cli",
]

root_doc = "index"
# Only these are pages: the top-level .md files of docs/ and the numbered notebook sources.
include_patterns = ["*.md", f"notebooks/{NOTEBOOK_GLOB}"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "node_modules"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# ------------------------------------------------------------------ MyST and myst-nb

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
# $$...$$ inside a paragraph is display math, as Jupyter shows it (the notebooks are written
# for Jupyter too); without this MyST pairs the dollars as inline math and breaks the text.
myst_dmath_double_inline = True
myst_heading_anchors = 3

nb_execution_mode = "cache"
nb_execution_timeout = 600  # seconds per cell, as tests/notebook_runner.py
nb_execution_raise_on_error = True  # a cell that raises fails the build
nb_execution_show_tb = True  # ... and the log shows its traceback
nb_execution_in_temp = True  # each kernel in a fresh temporary folder
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget scripts (they would come from a CDN)

# ------------------------------------------------------------------ autodoc / napoleon

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections say the types and shapes
autodoc_default_options = {"members": True}
autodoc_preserve_defaults = True  # show dtype=np.float32, not <class ...>
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = False

# ------------------------------------------------------------------ HTML

html_theme = "furo"
html_title = f"npvae {release}".strip()
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_show_sourcelink = True
html_copy_source = True

# ------------------------------------------------------------------ the notebooks


def _link_notebooks():
    """Make docs/notebooks the relative symlink ../notebooks (or, where no symlink can be
    made, a folder of copies of the numbered sources, refreshed now)."""
    link = DOCS / "notebooks"
    target = os.path.join(os.pardir, "notebooks")
    if link.is_symlink():
        if Path(os.path.realpath(link)) != NOTEBOOKS.resolve():
            raise RuntimeError(f"{link} is a symlink to {os.readlink(link)}, not to {target}: remove it")
        return
    marker = link / ".copied-by-conf-py"
    if not link.exists():
        try:
            link.symlink_to(target, target_is_directory=True)
            return
        except FileExistsError:  # another build made it a moment ago
            return _link_notebooks()
        except OSError:
            link.mkdir()
            marker.write_text("copies of ../notebooks/[0-9][0-9]_*.md, made by docs/conf.py\n")
    if not marker.exists():
        raise RuntimeError(f"{link} exists and is neither the symlink to {target} nor a folder "
                           "of copies made by docs/conf.py: move it away")
    wanted = {p.name for p in NOTEBOOKS.glob(NOTEBOOK_GLOB)}
    for old in link.glob(NOTEBOOK_GLOB):
        if old.name not in wanted:
            old.unlink()
    for name in wanted:
        src, dst = NOTEBOOKS / name, link / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)


_link_notebooks()

_LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")


def _retarget_notebook_links(app, docname, source):
    """A notebook's relative link into docs/ (``../docs/notation.md``, right from notebooks/)
    is rewritten to the same file named from the book's root (``/notation.md``, which
    Sphinx and MyST read relative to docs/), whether docs/notebooks is the symlink or a
    folder of copies."""
    if not docname.startswith("notebooks/"):
        return

    def fix(match):
        url = match.group(2)
        if "://" in url or url.startswith(("/", "mailto:")):
            return match.group(0)
        real = (NOTEBOOKS / url).resolve()
        try:
            real.relative_to(DOCS)
        except ValueError:
            return match.group(0)
        return match.group(1) + "/" + real.relative_to(DOCS).as_posix() + match.group(3)

    source[0] = _LINK.sub(fix, source[0])


def _kernel_environment():
    """What every notebook's kernel inherits from this process."""
    # Headless, like Agg, but figures become image outputs of their cells (with MPLBACKEND=Agg,
    # as a terminal or CI may set it, a kernel shows no figure at all).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    shared = os.environ.get("NPVAE_SHARED_DATA")
    if shared and "NPVAE_DATA" not in os.environ:
        os.environ["NPVAE_DATA"] = shared  # the folder that holds mnist/
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    _python3_kernel_is_this_python()


def _python3_kernel_is_this_python():
    """The notebooks name the kernel "python3": make it start this interpreter, by
    installing a kernelspec in a temporary prefix put first on JUPYTER_PATH when the one
    Jupyter would find starts another Python."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return
    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    this = {"python", "python3", "python%d.%d" % sys.version_info[:2]}
    if argv and (argv[0] in this or os.path.realpath(argv[0]) == os.path.realpath(sys.executable)):
        return
    import tempfile

    from ipykernel.kernelspec import install

    prefix = tempfile.mkdtemp(prefix="npvae-book-kernel-")
    install(kernel_name="python3", prefix=prefix)
    share = os.path.join(prefix, "share", "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, os.environ.get("JUPYTER_PATH")]))


_kernel_environment()

# ------------------------------------------------------------------ MathJax, served locally

# What a page needs of each MathJax, relative to its root (the rest is never loaded).
MATHJAX_FILES = {
    2: ["MathJax.js", "config/TeX-AMS_CHTML.js", "jax/element", "jax/input/TeX",
        "jax/output/CommonHTML", "extensions", "fonts/HTML-CSS/TeX/woff"],
    3: ["tex-mml-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "a11y", "ui", "sre"],
}
MATHJAX_HELP = """no local MathJax found, and the book serves its math offline.
Install one of:
  * Debian / Ubuntu:  apt-get install libjs-mathjax       (MathJax 2, /usr/share/javascript/mathjax)
  * anywhere, npm:    npm install --no-save --prefix docs mathjax@3  (MathJax 3, docs/node_modules/mathjax)
or set NPVAE_MATHJAX to a MathJax folder (MathJax 2: holds MathJax.js; MathJax 3: es5/tex-mml-chtml.js).
Looked in: {looked}"""


def _find_mathjax():
    """(version, folder to copy from) of the first local MathJax found, or (None, places)."""
    candidates = []
    if os.environ.get("NPVAE_MATHJAX"):
        candidates.append(Path(os.environ["NPVAE_MATHJAX"]))
    candidates += [DOCS / "node_modules" / "mathjax", REPO / "node_modules" / "mathjax",
                   Path("/usr/share/javascript/mathjax")]
    for root in candidates:
        for folder in (root, root / "es5"):
            if (folder / "tex-mml-chtml.js").is_file():
                return 3, folder
        if (root / "MathJax.js").is_file() and (root / "config" / "TeX-AMS_CHTML.js").is_file():
            return 2, root
    return None, candidates


MATHJAX_VERSION, MATHJAX_SOURCE = _find_mathjax()
# The classes myst-parser puts on what MathJax must typeset (math, and cell outputs); it
# marks each MyST page's top section as one to ignore otherwise.
_PROCESS = "tex2jax_process|mathjax_process|math|output_area"
if MATHJAX_VERSION == 2:
    mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML"  # relative to _static/
    mathjax2_config = {
        "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                    "processEscapes": True, "processEnvironments": False,
                    "ignoreClass": "tex2jax_ignore|mathjax_ignore", "processClass": _PROCESS},
        "CommonHTML": {"linebreaks": {"automatic": False}},
        "menuSettings": {"zoom": "None"},
        "showMathMenu": False,
        "messageStyle": "none",
    }
    myst_update_mathjax = False  # it would write a MathJax 3 configuration
elif MATHJAX_VERSION == 3:
    mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static/
    mathjax3_config = {"options": {"processHtmlClass": _PROCESS}}
    myst_update_mathjax = False


def _require_mathjax(app):
    if app.builder.format == "html" and MATHJAX_VERSION is None:
        from sphinx.errors import ConfigError

        raise ConfigError(MATHJAX_HELP.format(looked=", ".join(map(str, MATHJAX_SOURCE))))


def _copy_mathjax(app, exception):
    """Copy the local MathJax into <outdir>/_static/mathjax when an HTML build finishes."""
    if exception is not None or app.builder.format != "html" or MATHJAX_VERSION is None:
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    stamp = dest / ".source"
    origin = f"MathJax {MATHJAX_VERSION} from {MATHJAX_SOURCE}\n"
    if stamp.is_file() and stamp.read_text() == origin:
        return
    shutil.rmtree(dest, ignore_errors=True)
    for rel in MATHJAX_FILES[MATHJAX_VERSION]:
        src = MATHJAX_SOURCE / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)  # follows Debian's symlinks
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / rel)
    stamp.write_text(origin)


def setup(app):
    # MathJax on every page, not only on pages with math of their own: the sidebar shows the
    # notebooks' titles, which hold math, on every page.
    app.set_html_assets_policy("always")
    app.connect("source-read", _retarget_notebook_links)
    app.connect("builder-inited", _require_mathjax)
    app.connect("build-finished", _copy_mathjax)
