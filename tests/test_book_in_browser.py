"""Every page of the table of contents, as a reader's browser shows it: a real headless Chromium loads the
built book from a local HTTP server (see conftest.py), with every request to another host refused, since
the tests run offline.

Each test names the page, and lists every problem on it (the link, the anchor, the console message, the
paragraph), not only the first. Two pages are also kept as screenshots in _build/screenshots/, at desktop and
phone width, for CI to upload.
"""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.browser import Browser, BrowserError
from tests.conftest import DESKTOP, PHONE, ROOT, Site, serve

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SCREENSHOTS = ROOT / "_build" / "screenshots"

def toc_files(node) -> list[str]:
    """Every `root` and `file` entry of _toc.yml, in reading order."""
    if isinstance(node, list):
        return [file for item in node for file in toc_files(item)]
    if isinstance(node, dict):
        own = [node[key] for key in ("root", "file") if key in node]
        return own + [file for key, value in node.items() if key not in ("root", "file") for file in toc_files(value)]
    return []


def source(file: str) -> Path:
    found = [path for path in (ROOT / f"{file}.ipynb", ROOT / f"{file}.md") if path.is_file()]
    assert found, f"_toc.yml lists {file}, but there is no {file}.ipynb or {file}.md"
    return found[0]


PAGES = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
NOTEBOOKS = [file for file in PAGES if source(file).suffix == ".ipynb"]


def console_problems(site: Site, page: str) -> list[str]:
    """Console errors and uncaught exceptions at either width (but for requests to other hosts, which the
    browser refuses: the tests run offline)."""
    return [f"at {size[0]}px: {problem}" for size in (DESKTOP, PHONE) for problem in site.visit(page, size).problems]


def link_problems(site: Site, page: str) -> list[str]:
    """Links to the book's own site that lead to no page, or to an anchor that the target page's rendered DOM
    lacks; images of the site that did not load."""
    facts, problems = site.visit(page).facts, []
    for link in facts["links"]:
        if not link["url"].startswith(site.url):
            continue  # another site (GitHub, Binder), mailto:, javascript:
        url = urlsplit(link["url"])
        target = unquote(url.path).removeprefix(urlsplit(site.url).path)
        target += "index.html" if target.endswith("/") or not target else ""
        where = f"link {link['text']!r} (href={link['href']!r})"
        if not (site.html / target).is_file():
            problems.append(f"{where}: no {target} in the built book")
        elif url.fragment and target.endswith(".html") and unquote(url.fragment) not in site.visit(target).facts["ids"]:
            problems.append(f"{where}: {target} has no element with id {unquote(url.fragment)!r}")
    return problems + [f"image {src!r} did not load" for src in facts["broken_images"]]


def overflow_problems(site: Site, page: str) -> list[str]:
    """At phone width: the page scrolls sideways, or a paragraph, list item or heading runs past the screen's
    edge. Code blocks and tables may be wider: they scroll inside their own boxes, by design."""
    facts = site.visit(page, PHONE).facts
    problems = [f"wider than the screen: {element}" for element in facts["wide"]]
    if facts["scrollWidth"] > facts["clientWidth"]:
        problems.append(f"the page scrolls sideways: {facts['scrollWidth']}px wide, the screen {facts['clientWidth']}")
    return problems


@pytest.mark.parametrize("file", PAGES)
def test_page_loads_without_console_errors(site, file):
    assert not (problems := console_problems(site, f"{file}.html")), f"{file}.html:\n" + "\n".join(problems)


@pytest.mark.parametrize("file", PAGES)
def test_internal_links_and_anchors_resolve(site, file):
    assert not (problems := link_problems(site, f"{file}.html")), f"{file}.html:\n" + "\n".join(problems)


@pytest.mark.parametrize("file", PAGES)
def test_prose_fits_a_phone_screen(site, file):
    assert not (problems := overflow_problems(site, f"{file}.html")), \
        f"{file}.html at {PHONE[0]}px:\n" + "\n".join(problems)


BROKEN_PAGE = """<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"></head><body><article class="bd-article"><h1 id="top">A page with every fault</h1>
<p>Links: <a href="#top">fine</a>, <a href="other.html#there">fine too</a>, <a href="other.html#gone">lost anchor</a>,
<a href="missing.html">lost page</a>, <a href="https://example.com/">another site</a>.</p>
<p>A call too long for a phone: <code>create_app(Settings(environment_name_that_goes_on_and_on_and_on))</code></p>
<pre style="overflow-x: auto">a code block may be as wide as it likes: ------------------------------------------</pre>
<img src="missing.png"><img src="https://example.com/offline.png">
<script src="https://cdn.example.com/offline.js"></script>
<script>console.error("from the page"); setTimeout(() => { null.boom; }, 50);</script></article></body></html>"""


def test_the_checks_find_every_fault_of_a_broken_page(browser_tab, tmp_path):
    """The checks above can fail: on a page made to break each rule, each problem is found, named, and
    nothing else (not the other site, not the offline script, not the wide code block)."""
    (tmp_path / "page.html").write_text(BROKEN_PAGE)
    (tmp_path / "other.html").write_text('<html><body><h2 id="there">There</h2></body></html>')
    with serve(tmp_path) as url:
        broken = Site(tmp_path, url, browser_tab)
        console, links, overflow = (check(broken, "page.html")
                                    for check in (console_problems, link_problems, overflow_problems))
        assert sorted(problem.split("\n")[0] for problem in console) == sorted(
            f"at {width}px: {problem}" for width in (DESKTOP[0], PHONE[0]) for problem in (
                "console.error: from the page",
                (f"console error: Failed to load resource: the server responded with a status of 404 (File not found) "
                 f"({url}missing.png)"),
                f"uncaught exception at {url}page.html:9: TypeError: Cannot read properties of null (reading 'boom')"))
        assert links == ["link 'lost anchor' (href='other.html#gone'): other.html has no element with id 'gone'",
                         "link 'lost page' (href='missing.html'): no missing.html in the built book",
                         "image 'missing.png' did not load"]
        assert len(overflow) == 2 and "<code> \"create_app(Settings(" in overflow[0], overflow
        assert "scrolls sideways" in overflow[1]


def expected_outputs(notebook: Path) -> int:
    """Code cells whose stored outputs the page must show (nbval checks that execution gives the same)."""
    hidden = {"remove-output", "remove-cell", "remove_output", "remove_cell"}
    cells = json.loads(notebook.read_text())["cells"]
    return sum(1 for cell in cells if cell["cell_type"] == "code" and cell.get("outputs")
               and not hidden & set(cell.get("metadata", {}).get("tags", [])))


@pytest.mark.parametrize("file", NOTEBOOKS)
def test_notebook_page_launches_its_notebook_and_shows_outputs(site, file):
    facts = site.visit(f"{file}.html").facts
    launch, repository = CONFIG["launch_buttons"], CONFIG["repository"]
    org_repo = urlsplit(repository["url"]).path.strip("/")
    interface = {"jupyterlab": "lab/tree", "classic": "tree"}[launch.get("notebook_interface", "classic")]
    path = f"{repository.get('path_to_book', '')}{file}.ipynb".lstrip("/")
    binder = f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{repository['branch']}?urlpath={interface}/{path}"
    launches = [link["href"] for link in facts["links"] if link["href"].startswith(launch["binderhub_url"])]
    assert binder in launches, f"{file}.html: no Binder button for {path}; its Binder links: {launches}"
    assert (ROOT / path).is_file(), f"{file}.html: the Binder button opens {path}, which is not in the repository"
    expected = expected_outputs(source(file))
    assert expected and facts["outputs"] >= expected, \
        f"{file}.html shows {facts['outputs']} executed outputs; its notebook has {expected} code cells with output"


def article(html: str) -> str:
    """The page's own text: what sphinx-book-theme puts in <article class="bd-article">."""
    start = html.index('<article class="bd-article"')
    return html[start:html.index("</article>", start)]


def test_search_finds_depends(site):
    """The search page (Sphinx's own, from searchindex.js) lists the pages that use Depends."""
    site.open("search.html?q=Depends")
    found = site.tab.evaluate("""new Promise(done => { const started = Date.now(); const look = () => {
        const summary = document.querySelector('#search-results .search-summary, #search-results p');
        const hits = [...document.querySelectorAll('#search-results ul.search li a')];
        if ((summary && hits.length) || Date.now() - started > 20000)
            done(hits.map(a => new URL(a.href).pathname.slice(1)));
        else setTimeout(look, 100); }; look(); })""")
    assert "book/chapter-2/dependencies.html" in found, f"searching for Depends found {found}"
    assert "book/chapter-2/exercise.html" in found, f"searching for Depends found {found}"
    # Sphinx matches the stem "depend"; every page's sidebar says "Dependency injection", so look in the article.
    missing = [page for page in found if "depend" not in article((site.html / page).read_text()).lower()]
    assert not missing, f"search for Depends lists pages whose text never mentions it: {missing}"


@pytest.mark.parametrize("file", ["book/intro", "book/chapter-4/async"])
def test_screenshots_at_desktop_and_phone_width(site, file):
    """Kept in _build/screenshots/ (CI uploads them): a reviewer sees the pages without building the book."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in (DESKTOP, PHONE):
        site.open(f"{file}.html", (width, height))
        shot = SCREENSHOTS / f"{file.replace('/', '-')}-{width}.png"
        shown = site.tab.screenshot(shot)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"
        size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert size[0] == width and size[1] >= height, f"{shot} is {size[0]}x{size[1]}: not {width} wide, or cut short"
        assert len(data) > 30_000, f"{shot} is only {len(data)} bytes: a blank page?"
        pictures = site.tab.evaluate("[...document.querySelectorAll('.cell_output img')].map(img => "
                                     "img.getBoundingClientRect().bottom + scrollY)")
        assert all(bottom <= shown for bottom in pictures), f"{shot} cuts off a plot: {pictures}, {shown}px shown"


def fake_chromium(folder: Path, body: str) -> None:
    """A `chromium` first on PATH that runs the shell `body` instead of a browser."""
    folder.mkdir()
    (folder / "chromium").write_text(f"#!/bin/sh\necho $$ > {folder / 'pid'}\n{body}\n")
    (folder / "chromium").chmod(0o755)


def test_a_missing_chromium_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserError, match=r"need Chromium: `sudo apt-get install chromium`"):
        Browser(tmp_path / "profile")


@pytest.mark.parametrize(("body", "message"), [(f"exec {shutil.which('sleep')} 60", "did not answer in time"),
                                               ("exit 3", "closed its pipe")])
def test_a_hung_or_crashed_chromium_fails_clearly_and_is_killed(monkeypatch, tmp_path, body, message):
    fake_chromium(tmp_path / "bin", body)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrowserError, match=message):
        Browser(tmp_path / "profile", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "bin" / "pid").read_text()), 0)
