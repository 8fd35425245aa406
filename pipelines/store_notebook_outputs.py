"""Execute the notebooks in place so the repository shows their tables and figures.

    PYTHONPATH=. python pipelines/store_notebook_outputs.py [notebooks/01_quickstart.ipynb ...]

Run it without ``MPLBACKEND=Agg`` (the inline backend draws the figures). Progress bars, library
warnings on stderr, BokehJS loaders and execution timestamps are dropped from the stored outputs
so that the files stay small and their diffs show only what changed. CI re-executes the notebooks
(``pytest -m heavy``) whatever is stored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
DROPPED_MIME = ("application/javascript", "application/vnd.bokehjs_load.v0+json")


def kept(output: nbformat.NotebookNode) -> bool:
    """Whether an output is worth storing: not stderr, not a JavaScript loader."""
    if output.output_type == "stream":
        return output.name == "stdout"
    data = output.get("data", {})
    return not any(mime in data for mime in DROPPED_MIME) and "BokehJS" not in str(
        data.get("text/html", ""))


def store_outputs(path: Path) -> float:
    """Execute ``path`` in its own folder and write it back with its outputs; seconds taken."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=1800, resources={"metadata": {"path": str(path.parent)}}
                   ).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if kept(output)]
    nbformat.write(notebook, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for notebook_path in [Path(arg) for arg in sys.argv[1:]] or NOTEBOOKS:
        seconds = store_outputs(notebook_path)
        print(f"{notebook_path}: {seconds:.0f} s, {notebook_path.stat().st_size / 1e3:.0f} kB")
