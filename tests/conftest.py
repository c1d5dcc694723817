"""The built book, shared by every test that looks at it: built once per session, served over HTTP on
127.0.0.1 (file:// breaks the search page and some scripts) and opened in one headless Chromium.

Set BOOK_HTML to an existing build's html folder to skip the build (about ten minutes) while working on
the tests that read it: `BOOK_HTML=_build/html python -m pytest tests/test_book_in_browser.py`.
"""

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import Browser, BrowserError, Tab

ROOT = Path(__file__).resolve().parent.parent
DESKTOP, PHONE = (1280, 900), (375, 812)

#: What the page shows, read from its rendered DOM in one pass (see `Site.visit`).
FACTS = """(() => {
  const text = el => el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 70);
  const width = document.documentElement.clientWidth;
  const scrolls = el => { for (let up = el.parentElement; up; up = up.parentElement) {  // in a box that scrolls
    if (['auto', 'scroll'].includes(getComputedStyle(up).overflowX)) return true; } return false; };
  const prose = 'p, li, dt, dd, blockquote, figcaption, h1, h2, h3, h4, h5, h6, p code, li code';
  return {
    ids: [...document.querySelectorAll('[id]')].map(el => el.id)
      .concat([...document.querySelectorAll('a[name]')].map(el => el.name)),
    links: [...document.querySelectorAll('a[href]')].map(a => ({text: text(a) || a.title, href: a.getAttribute('href'),
                                                                url: a.href})),
    outputs: document.querySelectorAll('.cell_output').length,
    broken_images: [...document.images].filter(img => img.src.startsWith(location.origin) && img.complete
                                                      && !img.naturalWidth).map(img => img.getAttribute('src')),
    scrollWidth: document.scrollingElement.scrollWidth, clientWidth: width,
    wide: [...document.querySelectorAll('article.bd-article :is(' + prose + ')')]
      .filter(el => el.getClientRects().length && !scrolls(el))
      .map(el => { const box = el.getBoundingClientRect();  // content may overflow its own box: scrollWidth
                   return {el, left: box.left, right: Math.max(box.right, box.left + el.scrollWidth)}; })
      .filter(({left, right}) => right > width + 0.5 || left < -0.5)
      .filter((wide, i, all) => !all.some(other => other.el !== wide.el && wide.el.contains(other.el)))  // innermost
      .map(({el, left, right}) =>
        `<${el.tagName.toLowerCase()}> "${text(el)}" (${Math.round(left)} to ${Math.round(right)})`),
  };
})()"""


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    """The book as HTML: built with warnings as errors, once per session (or BOOK_HTML, already built)."""
    if given := os.environ.get("BOOK_HTML"):
        if not (html := Path(given).resolve()).joinpath("index.html").is_file():
            pytest.fail(f"BOOK_HTML={given}: no built book there (no index.html); unset it to build one")
        return html
    out = tmp_path_factory.mktemp("book")
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", "--warningiserror", "--keep-going",
               "--path-output", str(out), str(ROOT)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"{' '.join(command)} exited with {result.returncode}:\n" + \
        (result.stdout + result.stderr)[-6000:]
    return out / "_build" / "html"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """`folder` at http://127.0.0.1:<port>/, served from a thread while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def book_url(book_html):
    with serve(book_html) as url:
        yield url


@dataclass
class Visit:
    """A page as a reader saw it at one width: the console errors it caused and what FACTS found."""

    problems: list[str]
    facts: dict


class Site:
    """The served book in one browser tab; each page is loaded once per width, whichever test asks first."""

    def __init__(self, html: Path, url: str, tab: Tab):
        self.html, self.url, self.tab = html, url, tab
        self._visits: dict[tuple[str, tuple[int, int]], Visit] = {}

    def open(self, page: str, size: tuple[int, int] = DESKTOP) -> list[str]:
        """Load `page` (relative to the book's root) at `size`; the console errors it caused."""
        self.tab.viewport(*size, mobile=size[0] < 600)
        return self.tab.open(self.url + page)

    def visit(self, page: str, size: tuple[int, int] = DESKTOP) -> Visit:
        if (page, size) not in self._visits:
            problems = self.open(page, size)
            self._visits[page, size] = Visit(problems, self.tab.evaluate(FACTS))
        return self._visits[page, size]

    def html_of(self, page: str) -> str:
        """The page's DOM after its scripts ran."""
        self.open(page)
        return self.tab.evaluate("document.documentElement.outerHTML")


@pytest.fixture(scope="module")
def browser_tab(tmp_path_factory) -> Iterator[Tab]:
    """One headless Chromium per test module, killed at its end. Not one per session: a grader
    run in the test process ends by killing every child of that process that is not one of its
    own (grader.processes.kill_orphans), and a browser started before it would be one of them."""
    try:
        browser = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    except BrowserError as error:
        pytest.fail(str(error))
    try:
        yield browser.tab()
    finally:
        browser.close()


@pytest.fixture(scope="module")
def site(book_html, book_url, browser_tab) -> Site:
    return Site(book_html, book_url, browser_tab)
