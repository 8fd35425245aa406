"""The joint panel benchmark at its smallest: one universe, two cheap models."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "pipelines" / "benchmark_joint.py"


def test_small_joint_panel_prints_both_references_medians_and_the_largest_return(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    result = subprocess.run([sys.executable, str(SCRIPT), "--universes", "staples_2020",
                             "--models", "gaussian,bootstrap", "--n", "60", "--out",
                             str(tmp_path)], capture_output=True, text=True, check=True, env=env)
    text = result.stdout
    for title in ("## staples_2020 (out_of_sample)", "## staples_2020 (in_sample)",
                  "## Medians over 1 universes"):
        assert title in text
    assert "max_abs_r" in text and "stressed_corr/fl" in text
    saved = json.loads((tmp_path / "joint.json").read_text())
    (universe,) = saved["results"]
    assert universe["assets"] == ["KO", "PEP", "PG", "JNJ", "WMT"]
    assert universe["split_dates"]["train"][1].startswith("2020-")  # training ends in the crash
    gaussian = universe["rows"]["gaussian"]
    assert 0 < gaussian["max_abs_return"] < 0.5 and gaussian["paths_above_0.5"] == 0
    assert "out_of_sample:tail_dependence/floor" in gaussian


def test_unknown_universe_is_a_clear_error(monkeypatch, capsys):
    import importlib.util

    import pytest

    spec = importlib.util.spec_from_file_location("benchmark_joint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # in this process: no second start of Python and torch
    monkeypatch.setattr(sys, "argv", ["benchmark_joint.py", "--universes", "nope"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2 and "unknown universes ['nope']" in capsys.readouterr().err
