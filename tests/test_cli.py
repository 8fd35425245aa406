"""The command line end to end on bundled data: prepare, train, sample, evaluate."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synthfin import __version__
from synthfin.cli import app
from synthfin.io import load_samples

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


# -- every failure a user can cause: one line, exit 2 (issue 17) -----------------------------
@pytest.fixture(scope="module")
def gaussian_model(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "gaussian"
    assert invoke("train", "--model", "gaussian", "--data", prepared[0], "--out", out
                  ).exit_code == 0
    return out


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    return result.output


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage", ["truncate config.json", "truncate data.json",
                                    "truncate weights.safetensors", "garbage weights.safetensors",
                                    "extra key in config.json"])
def test_a_damaged_model_folder_is_one_line_naming_the_file(gaussian_model, tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(gaussian_model, folder)
    action, _, name = damage.partition(" ")
    if action == "truncate":
        truncate(folder / name)
    elif action == "garbage":
        (folder / name).write_bytes(b"not a safetensors file" * 3)
    else:
        header = json.loads((folder / "config.json").read_text())
        header["config"]["extra"] = 1
        (folder / "config.json").write_text(json.dumps(header))
        name = "config.json"
    output = one_line_error(invoke("sample", "--model-dir", folder, "--out", tmp_path / "s.npy"))
    assert name in output


@pytest.mark.parametrize("name", ["meta.json", "windows.npz"])
def test_a_damaged_data_folder_is_one_line_naming_the_file(prepared, tmp_path, name):
    folder = tmp_path / "data"
    shutil.copytree(prepared[0], folder)
    truncate(folder / name)
    output = one_line_error(invoke("train", "--model", "gaussian", "--data", folder, "--out",
                                   tmp_path / "m"))
    assert name in output and "synthfin prepare" in output


def test_samples_that_are_not_numbers_are_one_line(prepared, tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    for file in ("objects.npy", "junk.npy"):
        output = one_line_error(invoke("evaluate", "--data", prepared[0], "--samples",
                                       f"x={tmp_path / file}", "--no-neural", "--out",
                                       tmp_path / "r"))
        assert file in output


def test_out_on_a_file_a_negative_seed_and_a_repeated_name_are_one_line(
        prepared, gaussian_model, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(invoke("train", "--model", "gaussian", "--data",
                                                prepared[0], "--out", tmp_path / "file"))
    assert "seed" in one_line_error(invoke("sample", "--model-dir", gaussian_model, "--seed",
                                           -1, "--out", tmp_path / "s.npy"))
    np.save(tmp_path / "s.npy", np.zeros((4, 32, 1)))
    assert "'a' twice" in one_line_error(invoke(
        "evaluate", "--data", prepared[0], "--samples", f"a={tmp_path / 's.npy'}",
        "--samples", f"a={tmp_path / 's.npy'}", "--no-neural", "--out", tmp_path / "r"))


@pytest.mark.parametrize("setting, message", [
    ("epochs=abc", "epochs='abc' must be an integer"), ("epochs=0", "epochs=0 must be >= 1"),
    ("lr=-1", "lr=-1.0 must be > 0"), ("hidden=0", "hidden=0 must be >= 1"),
])
def test_model_settings_are_checked_for_type_and_range_before_training(
        prepared, tmp_path, setting, message):
    output = one_line_error(invoke("train", "--model", "ar", "--data", prepared[0], "--out",
                                   tmp_path / "m", "--set", setting))
    assert message in output and not (tmp_path / "m").exists()


def test_out_of_memory_is_one_line_and_verbose_adds_the_traceback(
        gaussian_model, tmp_path, monkeypatch):
    from synthfin.models import Generator

    def exhausted(*args, **kwargs):
        raise MemoryError
        yield

    monkeypatch.setattr(Generator, "sample_chunks", exhausted)
    args = ("sample", "--model-dir", gaussian_model, "--n", 2_000_000, "--length", 252,
            "--out", tmp_path / "s.npy")
    assert "out of memory" in one_line_error(invoke(*args))
    assert not (tmp_path / "s.npy").exists() and not list(tmp_path.iterdir())
    verbose = invoke("-v", *args)
    assert verbose.exit_code == 2 and "Traceback" in verbose.output


def test_ctrl_c_is_one_line_and_exit_130(gaussian_model, tmp_path, monkeypatch):
    from synthfin.models import Generator

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Generator, "load", interrupted)
    output = one_line_error(invoke("sample", "--model-dir", gaussian_model, "--out",
                                   tmp_path / "s.npy"), code=130)
    assert "interrupted" in output


def test_a_bad_date_in_a_price_file_is_one_line_naming_value_and_row(tmp_path):
    (tmp_path / "bad.csv").write_text("date,X\n2020-01-02,100\n2020-13-45,101\n")
    output = one_line_error(invoke("prepare", "--source", tmp_path / "bad.csv", "--out",
                                   tmp_path / "p"))
    assert "'2020-13-45' in row 2" in output


def test_samples_are_written_in_chunks_that_equal_one_draw(gaussian_model, tmp_path,
                                                           monkeypatch):
    from synthfin.models import Generator

    monkeypatch.setattr("synthfin.models.base.CHUNK_VALUES", 32 * 50)  # 50 paths a chunk
    for suffix in (".npy", ".parquet"):
        assert invoke("sample", "--model-dir", gaussian_model, "--n", 120, "--seed", 3,
                      "--out", tmp_path / f"s{suffix}").exit_code == 0
    generator = Generator.load(gaussian_model)
    chunks = list(generator.sample_chunks(120, seed=3))
    assert [len(c) for c in chunks] == [50, 50, 20]
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), np.concatenate(chunks))
    assert pq.ParquetFile(tmp_path / "s.parquet").metadata.num_row_groups == 3
    np.testing.assert_array_equal(load_samples(tmp_path / "s.parquet"), np.concatenate(chunks))
    one = next(generator.sample_chunks(40, seed=3))
    np.testing.assert_array_equal(one, generator.sample_returns(40, seed=3))


@pytest.mark.parametrize("command", ["", "download", "prepare", "train", "sample", "evaluate",
                                     "facts", "run", "stress", "models"])
def test_help_shows_no_docstring_markup(command):
    result = invoke(*[part for part in (command, "--help") if part])
    assert result.exit_code == 0, result.output
    for markup in ("``", ":class:", ":func:", ":meth:"):
        assert markup not in result.output


def test_train_reports_its_epochs_as_lines_when_stderr_is_no_terminal(prepared, tmp_path):
    result = runner.invoke(app, ["train", "--model", "ar", "--data", str(prepared[0]),
                                 "--out", str(tmp_path / "ar"), "--set", "epochs=2",
                                 "--set", "hidden=8", "--set", "pretrained=null",
                                 "--set", "stationary_days=252", "--set", "patience=5"])
    assert result.exit_code == 0, result.output
    assert "mle: epoch 1/2, nll " in result.stderr and "mle: epoch 2/2, " in result.stderr
    assert "stationary states" in result.stderr and "trained ar" in result.stdout


def test_sample_says_on_stderr_how_many_paths_are_implausible(gaussian_model, tmp_path):
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(gaussian_model, broken)
    weights = load_file(str(broken / "weights.safetensors"))
    weights["moments"][:, 1:] *= 40.0  # 40 long-run sds a day
    save_file(weights, str(broken / "weights.safetensors"))
    result = CliRunner().invoke(app, ["sample", "--model-dir", str(broken),
                                                      "--n", "50", "--out",
                                                      str(tmp_path / "s.npy")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "gaussian sample:" in lines[0] and "of 50 paths" in lines[0]
    ok = CliRunner().invoke(app, ["sample", "--model-dir", str(gaussian_model),
                                                  "--n", "50", "--out", str(tmp_path / "t.npy")])
    assert "warning:" not in ok.stderr


def test_scenario_draws_the_others_given_a_real_price_path(tmp_path):
    from synthfin.data.sources import load_prices

    assert invoke("prepare", "--source", "bundled", "--tickers", "SP500,KO", "--start",
                  "2015-01-01", "--end", "2020-02-28", "--window", "16", "--out",
                  tmp_path / "data").exit_code == 0
    assert invoke("train", "--model", "dcc", "--data", tmp_path / "data", "--out",
                  tmp_path / "dcc").exit_code == 0
    march = load_prices("bundled", ["SP500"], start="2020-02-28", end="2020-03-31")
    march.rename_axis("date").to_csv(tmp_path / "march.csv")
    result = invoke("scenario", "--model-dir", tmp_path / "dcc", "--given",
                    tmp_path / "march.csv", "--n", 100, "--out", tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    assert "given SP500 on 2020-03-02 to 2020-03-31 (22 days)" in result.output
    samples = np.load(tmp_path / "s.npy")
    real = np.diff(np.log(march["SP500"].to_numpy()))
    assert samples.shape == (100, 22, 2)
    np.testing.assert_allclose(samples[:, :, 0], np.broadcast_to(real, (100, 22)))
    gaussian = invoke("train", "--model", "gaussian", "--data", tmp_path / "data", "--out",
                   tmp_path / "g")
    assert gaussian.exit_code == 0
    assert "cannot draw assets given" in one_line_error(invoke(
        "scenario", "--model-dir", tmp_path / "g", "--given", tmp_path / "march.csv",
        "--out", tmp_path / "t.npy"))


def test_facts_with_data_prints_the_noise_floor_and_flags_a_gaussian(tmp_path):
    """`synthfin facts --data` shows each gap beside the floor (mean and spread over block
    assignments) and the anchors; an iid Gaussian is more than 2 spreads above the floor on
    acf_abs."""
    runner = CliRunner()
    data, model, out = tmp_path / "data", tmp_path / "m", tmp_path / "s"
    for args in (["prepare", "--tickers", "SP500", "--start", "2000-01-01", "--window", "32",
                  "--stride", "4", "--out", data],
                 ["train", "--model", "gaussian", "--data", data, "--out", model],
                 ["sample", "--model-dir", model, "--out", out, "--n", 2000,
                  "--shard-size", 1000, "--seed", 1]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["facts", "--samples", str(out), "--data", str(data)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "noise floor" in text and "floor spread" in text and "blind" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[-8:]}
    header = text.splitlines()[-7].split()
    acf_abs = header.index("acf_abs")
    floor, spread = float(rows["noise"][acf_abs + 1]), float(rows["floor"][acf_abs + 1])
    assert float(rows["synthetic"][acf_abs]) > floor + 2 * spread
