"""The book (docs/, Sphinx + myst-nb) builds with every notebook executed, and each page
shows a reader what it should, offline.

The build runs once per session, in a subprocess, into a temporary folder:
``python -m sphinx -b html docs <tmp>/html`` (every notebook is executed afresh: the
jupyter-cache sits beside <tmp>/html). docs/conf.py takes $NPVAE_DATA from $NPVAE_SHARED_DATA when
only the latter is set, as tests/notebook_runner.py does, so the MNIST notebook reads the
shared copy.

Without a browser: the build succeeds without a warning; every notebook source is a page,
in the reading order of the index; no page loads a script, a style sheet, a font or an
image from http(s); MathJax is the site's own copy; the command line page lists every
subcommand and flag of the parser; the API page documents every name in npvae.__all__;
no executed cell shows an error or a traceback, and every figure a cell drew is an image
of its output.

In headless Chromium (``--dump-dom`` after MathJax ran, every network request logged and
none allowed to leave the machine), each notebook page: every formula was typeset, no
TeX error, no raw ``$$``, ``\\(`` or TeX command left in the text; every <img> is a PNG
file of the build, of non-zero size, and the page shows as many figures as its cells
drew; no cell output shows a traceback; and the page made no http(s) request. These
skip, with the reason, when no Chromium is installed, unless NPVAE_REQUIRE_BROWSER=1
(as CI sets it), which turns the skip into a failure.

NPVAE_SCREENSHOT=1 also saves a screenshot of a notebook page (its title and the section
with its first figure) to docs/figures/book-page.png (or to the .png path the variable
names).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
bs4 = pytest.importorskip("bs4")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))
STEMS = [p.stem for p in SOURCES]
SCREENSHOT_PAGE = "01_elbo"
SCREENSHOT_DEFAULT = DOCS / "figures" / "book-page.png"
BUILD_TIMEOUT = 3600  # seconds: every notebook runs, on 2 shared cores
BROWSER_TIMEOUT = 120

# ------------------------------------------------------------------ the build


class Book:
    """The built book: its html folder, the executed notebooks and the build's log."""

    def __init__(self, root, log):
        self.root = root
        self.html = root / "html"
        self.executed = root / "jupyter_execute" / "notebooks"
        self.log = log

    def page(self, name):
        return self.html / f"{name}.html"

    def soup(self, name):
        return bs4.BeautifulSoup(self.page(name).read_text(encoding="utf-8"), "html.parser")

    def pages(self):
        return sorted(self.html.rglob("*.html"))


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", str(DOCS), str(root / "html")]
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the book did not build in {BUILD_TIMEOUT} s: {' '.join(cmd)}\n{err.stderr or ''}")
    log = _ANSI.sub("", done.stdout + "\n" + done.stderr)
    (root / "build.log").write_text(log)
    if done.returncode != 0:
        pytest.fail(f"`python -m sphinx -b html docs ...` failed (exit {done.returncode}):\n"
                    f"{_what_failed(log)}\n(the whole log: {root / 'build.log'})")
    return Book(root, _ANSI.sub("", done.stderr))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _what_failed(log):
    """The part of a failed build's log that says why: the notebook cell that raised (with
    its traceback), else the end of the log."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Executing notebook failed" in line:
            cell = next((j for j in range(i, len(lines)) if "An error occurred while executing" in lines[j]), i)
            return "\n".join([line] + lines[cell:cell + 70])
    return "\n".join(lines[-60:])


# ------------------------------------------------------------------ the build, without a browser

# A Sphinx warning or error line; not the kernels' own "[IPKernelApp] WARNING | ..." chatter.
_SPHINX_WARNING = re.compile(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE): ")


def test_the_build_has_no_warnings(book):
    warnings = [line for line in book.log.splitlines()
                if _SPHINX_WARNING.search(line) and "[IPKernelApp]" not in line]
    assert not warnings, "the book's build warns:\n" + "\n".join(warnings)


def test_every_notebook_is_a_page_in_the_reading_order(book):
    assert STEMS, "no notebooks/[0-9][0-9]_*.md found"
    missing = [s for s in STEMS if not book.page(f"notebooks/{s}").is_file()]
    assert not missing, f"notebooks without a page in the book: {missing}"
    # the index's toctree lists them, numbered order, and nothing else from notebooks/
    listed = [a["href"] for a in book.soup("index").select("article a[href^='notebooks/']")]
    stems = [Path(urlsplit(h).path).stem for h in listed]
    assert list(dict.fromkeys(stems)) == STEMS
    # only the numbered MyST sources became pages (the .ipynb beside them are not read: the
    # build would warn of two files for one document)
    extra = sorted({p.stem for p in (book.html / "notebooks").glob("*.html")} - set(STEMS))
    assert not extra, f"pages under notebooks/ that are no numbered notebook: {extra}"


_LOADING = [("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"),
            ("audio", "src"), ("video", "src"), ("embed", "src"), ("object", "data"),
            ("track", "src"), ("input", "src")]
_LINK_RELS_THAT_LOAD = {"stylesheet", "preload", "modulepreload", "prefetch", "icon",
                        "shortcut", "apple-touch-icon", "manifest", "preconnect", "dns-prefetch"}
_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
_CSS_REMOTE = re.compile(r"(@import\s+(url\()?|url\()\s*['\"]?\s*(https?:)?//", re.I)


def _remote_loads(soup):
    """Every URL in the page that the browser would fetch from the network."""
    found = []
    for tag, attr in _LOADING:
        for el in soup.find_all(tag):
            value = el.get(attr) or ""
            if _REMOTE.match(value):
                found.append(f"<{tag} {attr}={value}>")
            for candidate in (el.get("srcset") or "").split(","):
                if _REMOTE.match(candidate):
                    found.append(f"<{tag} srcset={candidate.strip()}>")
    for el in soup.find_all("link"):
        rels = {r.lower() for r in (el.get("rel") or [])}
        if rels & _LINK_RELS_THAT_LOAD and _REMOTE.match(el.get("href") or ""):
            found.append(f"<link rel={' '.join(rels)} href={el['href']}>")
    for el in soup.find_all("style"):
        found += [f"<style> {m.group(0)}" for m in _CSS_REMOTE.finditer(el.get_text())]
    for el in soup.find_all(style=True):
        found += [f"style={m.group(0)}" for m in _CSS_REMOTE.finditer(el["style"])]
    return found


def test_no_page_loads_anything_from_the_network(book):
    bad = {}
    for page in book.pages():
        soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        if found := _remote_loads(soup):
            bad[str(page.relative_to(book.html))] = found
    for css in (book.html / "_static").rglob("*.css"):
        if found := [m.group(0) for m in _CSS_REMOTE.finditer(css.read_text(encoding="utf-8", errors="replace"))]:
            bad[str(css.relative_to(book.html))] = found
    assert not bad, f"pages that load from http(s): {json.dumps(bad, indent=1)}"


def test_mathjax_is_served_by_the_site(book):
    for page in book.pages():
        soup = bs4.BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        scripts = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
        name = page.relative_to(book.html)
        assert len(scripts) == 1, f"{name}: MathJax scripts {scripts}"
        path = (page.parent / unquote(urlsplit(scripts[0]).path)).resolve()
        assert path.is_file() and path.is_relative_to(book.html / "_static" / "mathjax"), \
            f"{name}: MathJax {scripts[0]} is not the site's copy in _static/mathjax"


def test_the_cli_page_is_the_parser(book):
    import argparse

    from npvae.app.cli import build_parser

    parser = build_parser()
    soup = book.soup("cli")
    text = soup.get_text(" ")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in sub.choices.items():
        section = soup.find("section", id=f"npvae-{name}")
        assert section is not None, f"cli page: no section for `npvae {name}`"
        shown = section.get_text(" ")
        for action in subparser._actions:
            for flag in action.option_strings:
                assert flag in shown, f"cli page: `npvae {name}` does not show {flag}"
    assert "Exit statuses" in text


def test_the_api_page_documents_every_public_name(book):
    import npvae

    ids = {el.get("id") for el in book.soup("api").find_all(id=True)}
    missing = [name for name in npvae.__all__ if f"npvae.{name}" not in ids]
    assert not missing, f"npvae.__all__ names missing from docs/api.md: {missing}"


def _executed(book, stem):
    import nbformat

    path = book.executed / f"{stem}.ipynb"
    assert path.is_file(), f"the build left no executed copy of {stem} ({path})"
    return nbformat.read(str(path), as_version=4)


def _output_text(output):
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return "\n".join(v for k, v in output.get("data", {}).items() if k.startswith("text/"))


_DRAWS = re.compile(r"\bplt\.(subplots|figure|subplot|imshow|plot)\(")


@pytest.mark.parametrize("stem", STEMS)
def test_executed_cells_show_no_error_and_draw_their_figures(book, stem):
    nb = _executed(book, stem)
    images = 0
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{stem} cell {i}: {output.ename}: {output.evalue}"
            assert "Traceback" not in _output_text(output), f"{stem} cell {i} prints a traceback"
            images += "image/png" in output.get("data", {})
    if _DRAWS.search((REPO / "notebooks" / f"{stem}.md").read_text(encoding="utf-8")):
        assert images > 0, (f"{stem} draws with matplotlib but its executed cells hold no image "
                            "(is MPLBACKEND=Agg reaching the kernel?)")


# ------------------------------------------------------------------ in the browser


def _find_chromium():
    named = os.environ.get("NPVAE_CHROMIUM")
    if named:
        return shutil.which(named) or named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="session")
def chromium():
    path = _find_chromium()
    if path is None or not Path(path).exists():
        reason = ("headless Chromium is not installed (apt-get install chromium), so the book's "
                  "pages were not checked in a browser")
        if os.environ.get("NPVAE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NPVAE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason + "; NPVAE_REQUIRE_BROWSER=1 makes this a failure")
    return path


def _run_chromium(chromium, tmp_path, url, *args):
    """Run headless Chromium on `url` with no way out to the network; returns (its stdout,
    the http(s) URLs the page itself asked for)."""
    profile = tmp_path / "profile"
    netlog = tmp_path / "netlog.json"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
           f"--user-data-dir={profile}",
           # no name resolves, and anything else goes to a closed port on this machine
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
           f"--log-net-log={netlog}", "--virtual-time-budget=15000", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert done.returncode == 0, f"chromium failed on {url}:\n{done.stderr[-3000:]}"
    return done.stdout, _page_requests(netlog)


def _page_requests(netlog):
    """http(s) URLs requested by a page (not by the browser itself, whose requests have no
    origin) in a Chromium NetLog."""
    if not netlog.is_file():
        return []
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short: close its event list
        log = json.loads(text.rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url = params.get("url", "")
        if event.get("type") == start_job and re.match(r"https?:", url) \
                and params.get("initiator") != "not an origin":
            urls.append(url)
    return urls


_NOT_PROSE = {"head", "script", "style", "pre", "code", "textarea", "math", "mjx-assistive-mml"}
_NOT_PROSE_CLASSES = {"MathJax_Preview", "MJX_Assistive_MathML", "MathJax_MathML", "highlight"}
_RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\[A-Za-z]{2,}")


def _prose(soup):
    """The text a reader sees, outside code, scripts and MathJax's own hidden copies."""
    for el in soup.find_all(string=True):
        if any(p.name in _NOT_PROSE or _NOT_PROSE_CLASSES & set(p.get("class") or [])
               for p in el.parents):
            continue
        yield el


def _typeset(el):
    """Whether a Sphinx math element holds MathJax output (MathJax 2 CommonHTML, or 3)."""
    return el.find(class_=re.compile(r"^(mjx-chtml|MathJax_CHTML|MathJax)$")) is not None \
        or el.find("mjx-container") is not None


def _check_page(book, stem, dom):
    soup = bs4.BeautifulSoup(dom, "html.parser")
    static = book.soup(f"notebooks/{stem}")
    article = soup.find("article") or soup

    # the math: every formula typeset, no TeX error, no raw TeX left in the text
    maths = soup.select("span.math, div.math")
    assert len(maths) == len(static.select("span.math, div.math")) > 0, f"{stem}: math elements lost"
    untypeset = [m.get_text()[:80] for m in maths if not _typeset(m)]
    assert not untypeset, f"{stem}: {len(untypeset)} formulas not typeset by MathJax, e.g. {untypeset[:3]}"
    errors = soup.select(".mjx-merror, mjx-merror, .MathJax_Error, [data-mjx-error]")
    assert not errors, f"{stem}: TeX errors: {[e.get('data-mjx-error') or e.get_text()[:80] for e in errors]}"
    raw = [s.strip()[:100] for s in _prose(soup) if _RAW_TEX.search(s)]
    assert not raw, (f"{stem}: raw TeX left in the text: {raw[:5]} (MyST did not read it as math: "
                     "look in the source for a line inside $...$ or $$...$$ that starts with '- ', "
                     "'+ ' or '1. ', which Markdown takes for a list item, or for an unpaired $)")

    # the figures: each <img> a PNG file of the build, as many as the cells drew
    images = article.find_all("img")
    page_dir = book.page(f"notebooks/{stem}").parent
    for img in images:
        src = img.get("src") or ""
        assert not _REMOTE.match(src) and not src.startswith("data:"), f"{stem}: <img src={src[:80]}>"
        path = (page_dir / unquote(urlsplit(src).path)).resolve()
        assert path.is_file(), f"{stem}: <img src={src}> has no file"
        data = path.read_bytes()
        assert len(data) > 0 and data[:8] == b"\x89PNG\r\n\x1a\n", f"{stem}: {src} is not a PNG"
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
            assert im.size[0] > 0 and im.size[1] > 0, f"{stem}: {src} is empty"
    drawn = sum("image/png" in o.get("data", {})
                for c in _executed(book, stem).cells for o in c.get("outputs", []))
    shown = len(article.select(".cell_output img"))
    assert shown == drawn, f"{stem}: the cells drew {drawn} figures, the page shows {shown}"

    # no error in any cell output
    for out in article.select(".cell_output"):
        assert not out.select(".traceback, .output.error"), f"{stem}: a cell output shows an error"
        assert "Traceback (most recent call last)" not in out.get_text(), f"{stem}: a cell output shows a traceback"

    # nothing loaded from the network, by the page as written or by its scripts
    assert not _remote_loads(soup), f"{stem}: loads from http(s): {_remote_loads(soup)}"


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_page_in_the_browser(chromium, book, stem, tmp_path):
    page = book.page(f"notebooks/{stem}")
    assert page.is_file(), f"{stem} has no page"
    dom, requests = _run_chromium(chromium, tmp_path, page.as_uri(), "--dump-dom")
    assert "</html>" in dom, f"chromium gave no DOM for {stem}"
    assert not requests, f"{stem} requested from the network: {requests}"
    _check_page(book, stem, dom)
    if stem == (SCREENSHOT_PAGE if SCREENSHOT_PAGE in STEMS else STEMS[0]) \
            and os.environ.get("NPVAE_SCREENSHOT"):
        _screenshot(book, chromium, stem, tmp_path / "shot")


# Shows the page's title, then the section holding its first figure (when it has one).
_FOCUS_SCRIPT = """<script>(function () {
  var target = document.getElementById(%s);
  for (var node = target; node && node.tagName !== "ARTICLE"; node = node.parentElement) {
    for (var prev = node.previousElementSibling; prev; ) {
      var before = prev.previousElementSibling;
      if (prev.tagName !== "H1") prev.remove();
      prev = before;
    }
  }
})();</script>"""


def _screenshot(book, chromium, stem, tmp_path):
    value = os.environ["NPVAE_SCREENSHOT"]
    out = Path(value) if value.lower().endswith(".png") else SCREENSHOT_DEFAULT
    page = book.page(f"notebooks/{stem}")
    html = page.read_text(encoding="utf-8")
    soup = bs4.BeautifulSoup(html, "html.parser")
    figure = soup.select_one("article .cell_output img")
    section = figure.find_parent("section") if figure else None
    if section is not None and section.find_parent("section") is not None:
        html = html.replace("</body>", _FOCUS_SCRIPT % json.dumps(section["id"]) + "</body>")
    focused = page.with_name(f".screenshot-{stem}.html")  # beside the page: its links still work
    focused.write_text(html, encoding="utf-8")
    tmp_path.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / "page.png"
    _run_chromium(chromium, tmp_path, focused.as_uri(), "--window-size=1200,1600", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, "the screenshot came out empty"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, out)
    print(f"screenshot of {stem} saved to {out}")
