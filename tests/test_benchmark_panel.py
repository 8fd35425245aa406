"""The panel benchmark's --quick run: every model on two series, both references, likelihood."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "pipelines" / "benchmark_panel.py"


def test_quick_panel_prints_both_references_and_the_likelihood_table(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--jobs", "1",
                             "--stride", "8", "--out", str(tmp_path)], capture_output=True,
                            text=True, check=True)  # pytest-timeout guards a hang
    text = result.stdout
    assert "window 32, stride 8," in text  # tiny.yaml's window, the stride asked for
    for title in ("In-sample", "Out-of-sample", "GJR-GARCH(1,1)-t"):
        assert title in text
    assert "| ar | " in text and "of 2 |" in text  # wins counted over the two series
    saved = json.loads((tmp_path / "panel.json").read_text())
    assert [s["ticker"] for s in saved["series"]] == ["SP500", "JPM"]
    for series in saved["series"]:
        assert series["settings"]["config"]["data"]["stride"] == 8
        assert set(series["rows"]) == {"ar", "gjr", "gaussian"}
        ar = series["rows"]["ar"]
        assert ar["ll_se"] > 0 and "out_of_sample:acf_abs" in ar and "in_sample:tails" in ar
        assert "ll_gain" not in series["rows"]["gaussian"]
    assert (tmp_path / "panel.md").read_text().startswith("panel of 2 series")


def test_unknown_model_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--models", "ar,nope",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "['nope'] are not in" in result.stderr
