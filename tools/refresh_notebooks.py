"""Re-execute the narrative notebooks in place, so that their stored outputs (which nbval
checks) match the code. Execution timestamps are dropped to keep diffs readable.

    python tools/refresh_notebooks.py [NOTEBOOK ...]      (default: every notebook in book/)
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def refresh(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)
    print(f"refreshed {path.relative_to(ROOT)}")


def main() -> int:
    paths = [Path(arg).resolve() for arg in sys.argv[1:]] or sorted((ROOT / "book").rglob("*.ipynb"))
    for path in paths:
        if ".ipynb_checkpoints" not in path.parts:
            refresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
