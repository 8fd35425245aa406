"""The joint panel benchmark at its smallest: one universe, two cheap models."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    assert gaussian["extreme_days_a_year"] == 0
    # no staples day since 2014 moved 0.5: the bound is -log(0.05) / asset-years
    real = universe["real_extreme_days"]
    assert real["days"] == 0 and 0.05 < real["upper"] < 3.0 / 40
    assert "out_of_sample:tail_dependence/floor" in gaussian


def _script_module():
    spec = importlib.util.spec_from_file_location("benchmark_joint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # in this process: no second start of Python and torch
    return module


def test_unknown_universe_is_a_clear_error(monkeypatch, capsys):
    module = _script_module()
    monkeypatch.setattr(sys, "argv", ["benchmark_joint.py", "--universes", "nope"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2 and "unknown universes ['nope']" in capsys.readouterr().err


def test_extreme_day_rate_counts_days_per_asset_year_with_the_exact_poisson_bound():
    """Three days beyond 0.5 in ten asset-years (NaN days not counted): 0.3 a year, and the
    bound is the one-sided 95 % Poisson upper limit of 3, chi2(0.95, 8) / 2 = 7.754, per year;
    a model drawing at that rate sees 3 or fewer such days in ten years 5 % of the time."""
    from scipy import stats

    module = _script_module()
    returns = np.full((2600, 1), 0.01)
    returns[[5, 50, 500], 0] = [-0.6, 0.51, 0.9]
    returns[2520:] = np.nan
    days, rate, upper = module.extreme_day_rate(returns)
    assert (days, rate) == (3, pytest.approx(0.3)) and upper == pytest.approx(0.7754, abs=1e-4)
    assert stats.poisson.cdf(3, upper * 10) == pytest.approx(0.05)
