"""The test command's own settings: a fast default run that a loaded machine cannot time out,
and the notebooks run apart (``pytest -m heavy``), each cell under nbmake's timeout."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_pytest_timeout_is_never_below_nbmakes_timeout():
    settings = (ROOT / "pyproject.toml").read_text()  # tomllib is not in Python 3.10
    nbmake = int(re.search(r"--nbmake-timeout=(\d+)", settings).group(1))
    timeout = int(re.search(r"^timeout = (\d+)$", settings, re.MULTILINE).group(1))
    assert timeout >= nbmake >= 1800  # a cell may take 30 min on a busy box


def test_notebooks_are_heavy_left_out_by_default_and_run_by_ci():
    def collected(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                 "-p", "no:cacheprovider", *args], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode in (0, 5), result.stdout  # 5: every test deselected
        return [line for line in result.stdout.splitlines() if "::" in line]

    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    heavy = collected("-m", "heavy", "notebooks")
    assert sorted(line.split("::")[0] for line in heavy) == notebooks
    assert collected("notebooks") == []  # the default -m leaves them out
    ci = (ROOT / ".ci" / "run").read_text()
    assert "&& pytest\n" in ci and "\npytest -m heavy\n" in ci
