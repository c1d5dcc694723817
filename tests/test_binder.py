"""Binder, proven without Binder: the launch button's environment, built from the repository's Binder
configuration the way repo2docker builds it, runs each exercise page's notebook cells in a real kernel.

repo2docker (which mybinder.org and many JupyterHubs use to build images) reads runtime.txt (the Python
version), apt.txt (Ubuntu packages), requirements.txt and postBuild. With a local reference in
requirements.txt (`-e .`) it installs the requirements in the repository's folder, once the whole repository
is there; because pyproject.toml describes a package, it then runs `pip install .`; postBuild comes last.
This test does the same in a fresh virtual environment, on a copy of the course as a clone would hold it,
then starts a Jupyter kernel from that environment's own kernel spec and runs the cells that each exercise
page's "Work in a notebook" section shows, parsed from the page so that the book and this test cannot drift.

It takes a few minutes: the install (pip's cache and PIP_FIND_LINKS help), then one kernel per chapter.
Chapter 1 is graded in full, on the starter and on the reference solution; chapters 2 to 5 run only their
first own check (`--only`), which `grader verify` guarantees not to pass on the starter (Chapter 3's starter
cannot even be loaded as a package: the grader says so), to keep the test short.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from grader.catalogue import all_chapters  # noqa: E402
from grader.report import MARKS  # noqa: E402
from grader.runner import PASSED  # noqa: E402

HEADING = "## Work in a notebook (Binder or JupyterHub)"
CHAPTERS = all_chapters()
SCORE = re.compile(r"Score: (\d+)/(\d+) checks passed")


def run(args, cwd, env, timeout=1800):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited with {result.returncode}:\n{output}"
    return result


def notebook_section(number: int) -> str:
    """The "Work in a notebook" section of Chapter `number`'s exercise page, up to the next heading."""
    page = (ROOT / "book" / f"chapter-{number}" / "exercise.md").read_text(encoding="utf-8")
    assert page.count(HEADING + "\n") == 1, f"book/chapter-{number}/exercise.md needs one section `{HEADING}`"
    section = page.split(HEADING + "\n", 1)[1]
    return section.split("\n## ", 1)[0]


def notebook_cells(number: int) -> tuple[str, str]:
    """The section's two cells: the set-up cell and the check cell, as a learner would paste them."""
    cells = re.findall(r"^```ipython3\n(.*?)^```$", notebook_section(number), flags=re.MULTILINE | re.DOTALL)
    slug = f"chapter-{number}"
    assert len(cells) == 2, f"chapter {number}'s notebook section should show two ipython3 cells, not {len(cells)}"
    setup, check = (cell.strip() for cell in cells)
    assert setup.splitlines() == ["%load_ext grader.notebook", f"%grader start {slug}"], setup
    assert check == f"%grader check {slug}", check
    return setup, check


def apt_packages() -> list[str]:
    """apt.txt's packages, read as repo2docker reads them (a `#` starts a comment)."""
    lines = (ROOT / "apt.txt").read_text().splitlines()
    return [package for line in lines if (package := line.partition("#")[0].strip())]


# -- the configuration itself --------------------------------------------------------------------------


def test_runtime_txt_names_the_python_that_runs_the_tests():
    runtime = (ROOT / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), f"runtime.txt should read python-3.X (repo2docker's form): {runtime!r}"
    here = f"python-{sys.version_info.major}.{sys.version_info.minor}"
    assert runtime == here, (f"runtime.txt asks Binder for {runtime}, but these tests run on {here}: what they prove "
                             "holds for Binder only on the same Python. Run them on that Python, or change runtime.txt.")
    # repo2docker refuses to build when runtime.txt's version is outside pyproject.toml's requires-python.
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(runtime.removeprefix("python-") + ".0"), (runtime, requires)


@pytest.mark.parametrize("package", apt_packages())
def test_apt_txt_packages_are_installed_here(package):
    """What Binder installs from apt.txt is here too, so the kernel below sees what a Binder kernel sees."""
    if shutil.which("dpkg-query") is None:
        pytest.fail(f"apt.txt lists {package}; this test checks it with dpkg-query, which this system lacks "
                    "(run the tests on Debian or Ubuntu, as Binder does)")
    found = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    assert found.stdout.endswith("installed"), (f"apt.txt lists {package}, which is not installed here: "
                                                f"`sudo apt-get install {package}`")


def test_every_exercise_page_shows_the_same_notebook_section():
    """Only the chapter's number differs, so a learner who has done it once knows it everywhere."""
    sections = {chapter.number: notebook_section(chapter.number).replace(chapter.slug, "chapter-N")
                for chapter in CHAPTERS}
    assert len(set(sections.values())) == 1, "the exercise pages' notebook sections differ beyond the chapter number"
    for chapter in CHAPTERS:
        notebook_cells(chapter.number)


# -- the environment, as repo2docker builds it -------------------------------------------------------------


def clone_copy(into: Path) -> Path:
    """The files a fresh clone would hold (tracked ones, and new ones not yet committed but not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=False)
    assert listed.returncode == 0, f"this test copies the course as git lists it: {listed.stderr.decode()[-500:]}"
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is still listed
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def environment(venv: Path) -> dict[str, str]:
    """The environment of a process in the built image: the venv's bin first on PATH, nothing of ours."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "GRADER_STATE_DIR", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    """A course copy and a fresh venv with what the Binder configuration installs, in repo2docker's order."""
    base = tmp_path_factory.mktemp("binder")
    course = clone_copy(base / "course")
    venv = base / "venv"
    run([sys._base_executable, "-m", "venv", str(venv)], cwd=base, env=os.environ.copy())
    env = environment(venv)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], cwd=course, env=env)
    project = tomllib.loads((course / "pyproject.toml").read_text())
    if "project" in project and "build-system" in project:  # repo2docker's own step for a package
        run([python, "-m", "pip", "install", "--quiet", "."], cwd=course, env=env)
    if (course / "postBuild").exists():
        (course / "postBuild").chmod(0o755)  # as repo2docker does before it runs the script
        run(["./postBuild"], cwd=course, env=env)
    return course, venv, env


class Kernel:
    """A Jupyter kernel started from the built environment's own "Python 3 (ipykernel)" kernel spec."""

    def __init__(self, venv: Path, cwd: Path, env: dict[str, str], specs: Path) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        spec = json.loads((venv / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text())
        # The spec says `python`; the Jupyter server in that environment runs it as its own Python.
        assert spec["argv"][0] in ("python", "python3"), spec["argv"]
        spec["argv"][0] = str(venv / "bin" / "python")
        (specs / "binder-python3").mkdir(parents=True, exist_ok=True)
        (specs / "binder-python3" / "kernel.json").write_text(json.dumps(spec))
        self.manager = KernelManager(kernel_name="binder-python3",
                                     kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 600) -> dict[str, str]:
        """Run a cell; its printed text, its result as text and as HTML, and any error."""
        seen = {"stdout": "", "text": "", "html": "", "error": ""}

        def keep(message):
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                seen["stdout"] += content["text"]
            elif kind in ("execute_result", "display_data"):
                seen["text"] += content["data"].get("text/plain", "")
                seen["html"] += content["data"].get("text/html", "")
            elif kind == "error":
                seen["error"] += "\n".join(content["traceback"])

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=timeout)
        if reply["content"]["status"] != "ok" and not seen["error"]:
            seen["error"] = f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
        return seen

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def shown(cell: str, output: dict[str, str]) -> str:
    return f"cell:\n{cell}\n--- the kernel's output ---\n" + "\n".join(f"[{key}]\n{value}" for key, value in output.items()
                                                                   if value)


def test_the_binder_environment_grades_every_chapter_from_a_notebook(binder, tmp_path):
    course, venv, env = binder
    assert (venv / "bin" / "grader").is_file(), "the Binder environment has no `grader` command"
    for chapter in CHAPTERS:
        setup, check = notebook_cells(chapter.number)
        # A notebook's kernel starts in the notebook's folder: here, beside the chapter's walk-through.
        kernel = Kernel(venv, course / "book" / f"chapter-{chapter.number}", env, tmp_path / "kernels")
        try:
            where = kernel.run("import sys, grader; print(sys.executable); print(grader.__file__)")
            assert not where["error"], shown("import grader", where)
            executable, module = where["stdout"].split()
            assert Path(executable).parent == venv / "bin", shown("sys.executable", where)
            assert Path(module).is_relative_to(course), ("the kernel imports a grader from outside the clone (so "
                                                         "it cannot find the exercises): " + module)

            output = kernel.run(setup)
            assert not output["error"], shown(setup, output)
            folder = course / "exercises" / chapter.slug
            assert (folder / "README.md").is_file() and folder.joinpath(*chapter.app_module.split(".")).with_suffix(
                ".py").is_file(), shown(setup, output)
            assert f"Created {folder} with the starting code of {chapter.slug}" in output["text"], shown(setup, output)

            if chapter.number == 1:
                graded = kernel.run(check)
                expected_total = len(chapter.checks)
            else:
                first = next(item for item in chapter.checks if not item.inherited)
                graded = kernel.run(f"{check} --only {first.name}")
                expected_total = 1
                line = re.search(rf"^ (\S+) {re.escape(first.name)}\s", graded["text"], flags=re.MULTILINE)
                assert line and line.group(1) != MARKS[PASSED], shown(check, graded)
            assert not graded["error"], shown(check, graded)
            score = SCORE.search(graded["text"])
            assert score and SCORE.search(graded["html"]), shown(check, graded)
            passed, total = map(int, score.groups())
            assert total == expected_total and passed == 0, shown(check, graded)

            if chapter.number == 1:  # the reference solution, in the learner's folder, passes every check
                shutil.copytree(course / "solutions" / chapter.slug, folder, dirs_exist_ok=True)
                graded = kernel.run(check)
                assert f"Score: {expected_total}/{expected_total} checks passed" in graded["text"], shown(check, graded)
                assert "Chapter 1 is done" in graded["html"], shown(check, graded)

                doctor = kernel.run("%grader doctor")
                assert f"The grader runs from the clone at {course}" in doctor["stdout"], shown("%grader doctor", doctor)
                # Sandbox or not, the doctor says which: on Binder, "graded without a sandbox (...)".
                assert re.search(r"Your app is graded (in a sandbox: bubblewrap|without a sandbox \()",
                                 doctor["stdout"]), shown("%grader doctor", doctor)
        finally:
            kernel.stop()
