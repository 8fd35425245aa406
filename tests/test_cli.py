"""The command line end to end on bundled data: prepare, train, sample, evaluate."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthfin import __version__
from synthfin.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    result = invoke("prepare", "--source", "bundled", "--tickers", "SP500", "--start",
                    "2000-01-01", "--window", "32", "--stride", "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_version_and_help():
    assert __version__ in invoke("--version").output
    for command in ("download", "prepare", "train", "sample", "evaluate"):
        assert invoke(command, "--help").exit_code == 0


def test_prepare_prints_the_summary_and_writes_the_data(prepared):
    out, output = prepared
    for word in ("train", "val", "test", "calm", "stressed", "regime thresholds"):
        assert word in output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["assets"] == ["SP500"] and meta["window_len"] == 32


def test_train_sample_evaluate_round(prepared, tmp_path):
    data, _ = prepared
    assert invoke("train", "--model", "garch", "--set", "gjr=true", "--data", data,
                  "--out", tmp_path / "garch").exit_code == 0
    result = invoke("sample", "--model-dir", tmp_path / "garch", "--n", 300, "--regime",
                    "stressed", "--out", tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (300, 32, 1) and np.abs(samples).max() < 1  # unscaled log returns
    assert invoke("sample", "--model-dir", tmp_path / "garch", "--n", 20, "--length", 100,
                  "--out", tmp_path / "s.parquet").exit_code == 0
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert list(frame.columns) == ["path", "step", "asset", "return"] and len(frame) == 2000
    result = invoke("evaluate", "--data", data, "--samples", f"garch={tmp_path / 's.npy'}",
                    "--no-neural", "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "report.html").is_file()
    assert "acf_abs /floor" in result.output


@pytest.mark.parametrize("args, message", [
    (("prepare", "--tickers", "NOPE", "--out", "/tmp/x"), "NOPE"),
    (("prepare", "--window", "8000", "--out", "/tmp/x"), "history too short"),
    (("train", "--model", "nope", "--data", "/tmp", "--out", "/tmp/x"), "unknown model"),
    (("train", "--model", "garch", "--data", "/nonexistent", "--out", "/tmp/x"),
     "not a prepared data set"),
    (("sample", "--model-dir", "/nonexistent", "--out", "/tmp/x.npy"), "not a saved model"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1


def test_unknown_regime_is_a_clear_error(prepared, tmp_path):
    data, _ = prepared
    invoke("train", "--model", "gaussian", "--data", data, "--out", tmp_path / "g")
    result = invoke("sample", "--model-dir", tmp_path / "g", "--regime", "panic", "--out",
                    tmp_path / "s.npy")
    assert result.exit_code == 2 and "calm, normal, stressed" in result.output
