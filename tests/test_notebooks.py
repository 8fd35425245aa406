"""The notebooks are stored with their outputs, so the repository page shows their tables and
figures without running them (``pipelines/store_notebook_outputs.py`` refreshes them)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_code_cell_ran_and_every_notebook_shows_a_figure(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in cells), "a code cell was not executed"
    outputs = [o for c in cells for o in c["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(o["output_type"] == "error" for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs)  # no warnings or progress bars


def test_stored_outputs_stay_small():
    assert len(NOTEBOOKS) == 4
    assert sum(p.stat().st_size for p in NOTEBOOKS) < 1_000_000
