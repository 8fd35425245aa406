"""Fault injection: each failure of the reliability sweep (issue 32) re-tried as a user would
meet it: a kill between two steps, a damaged or hand-edited artifact, two writers, a model
retrained under a resumed job. Each ends in one clear line and exit code 2 (130 for Ctrl-C),
or in the correct result; never in a mix, a file outside its folder, or a traceback."""

from __future__ import annotations

import importlib
import json
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from synthfin.cli import _interrupts, app
from synthfin.data.windows import WindowData
from synthfin.distributed import _LauncherFilter
from synthfin.errors import BusyError, ConfigError, DataError, ModelError
from synthfin.io import output_lock
from synthfin.models import Generator, get_generator
from synthfin.scenarios.calendars import trading_days_after
from synthfin.scenarios.ohlcv import OHLCVModel, sp500_ohlcv_model
from synthfin.scenarios.paths import Scenarios
from synthfin.synthesizer import Synthesizer

runner = CliRunner()
TINY = Path(__file__).parents[1] / "pipelines" / "tiny.yaml"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    return result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "data"
    result = invoke("prepare", "--source", "bundled", "--tickers", "SP500", "--start",
                    "2005-01-01", "--window", "32", "--stride", "4", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def train(data: Path, out: Path, seed: int) -> Path:
    assert invoke("train", "--model", "gaussian", "--data", data, "--out", out, "--seed", seed
                  ).exit_code == 0
    return out


SHARDS = ("--n", 400, "--shard-size", 100, "--seed", 3, "--length", 20)


# -- 1. a model retrained under a resumed sharded job -----------------------------------------
def test_a_sharded_job_resumed_after_the_model_was_retrained_refuses_to_mix(data, tmp_path):
    model, out = train(data, tmp_path / "m", seed=7), tmp_path / "s"
    assert invoke("sample", "--model-dir", model, "--out", out, *SHARDS).exit_code == 0
    _kill_after_two_shards(out)
    train(data, model, seed=8)  # retrained in place: another fit
    message = one_line_error(invoke("sample", "--model-dir", model, "--out", out, *SHARDS))
    assert "drawn from another model" in message
    assert not (out / "_manifest.json").exists()  # nothing claims to be complete


def test_the_same_model_resumes_the_killed_job_to_the_uninterrupted_data_set(data, tmp_path):
    model = train(data, tmp_path / "m", seed=7)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for out in (whole, killed):
        assert invoke("sample", "--model-dir", model, "--out", out, *SHARDS).exit_code == 0
    _kill_after_two_shards(killed)
    assert invoke("sample", "--model-dir", model, "--out", killed, *SHARDS).exit_code == 0
    for part in sorted(whole.glob("part-*.parquet")):
        assert (killed / part.name).read_bytes() == part.read_bytes()
    manifest = json.loads((killed / "_manifest.json").read_text())
    assert manifest["model_sha256"] == Generator.load(model).fingerprint()


def _kill_after_two_shards(out: Path) -> None:
    """What a kill after the second shard leaves: shards 0-1 and their records, no manifest."""
    (out / "_manifest.json").unlink()
    for shard in (2, 3):
        (out / f"part-{shard:05d}.parquet").unlink()
        (out / "_shards" / f"{shard:05d}.json").unlink()


# -- 2. an evaluation interrupted while it writes its report ----------------------------------
def test_an_interrupted_evaluation_leaves_the_earlier_report_whole(data, tmp_path, monkeypatch):
    model, out = train(data, tmp_path / "m", seed=0), tmp_path / "report"
    samples = tmp_path / "s.npy"
    assert invoke("sample", "--model-dir", model, "--out", samples, "--n", 200).exit_code == 0
    evaluate = ("evaluate", "--data", data, "--samples", f"g={samples}", "--out", out,
                "--no-neural")
    assert invoke(*evaluate).exit_code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert {"metrics.json", "report.html"} <= set(before)

    def interrupted(evaluation, directory):  # Ctrl-C after metrics.json, while figures render
        assert (directory / "metrics.json").is_file()
        raise KeyboardInterrupt

    # the module, not the package's function of the same name
    monkeypatch.setattr(importlib.import_module("synthfin.evaluation.evaluate"), "write_report",
                        interrupted)
    message = one_line_error(invoke(*evaluate, "--seed", 1), code=130)
    assert "keeps its earlier report" in message and "synthfin run" not in message
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["about"]["samples"]["g"]["sha256"]  # it names what it was made from
    assert metrics["about"]["data_fingerprint"] == WindowData.load(data).fingerprint()


# -- 3. hand-edited prepared data --------------------------------------------------------------
@pytest.mark.parametrize("edit", ["meta says another window", "NaN in the windows",
                                  "windows cut shorter"])
def test_hand_edited_prepared_data_is_refused_before_training(data, tmp_path, edit):
    folder = tmp_path / "edited"
    folder.mkdir()
    meta = json.loads((data / "meta.json").read_text())
    with np.load(data / "windows.npz") as stored:
        arrays = dict(stored)
    if edit == "meta says another window":
        meta["window_len"] = 64
    elif edit == "NaN in the windows":
        arrays["train_windows"][0, 0, 0] = np.nan
    else:
        arrays = {k: v[:, :16] if k.endswith("_windows") else v for k, v in arrays.items()}
    (folder / "meta.json").write_text(json.dumps(meta))
    np.savez(folder / "windows.npz", **arrays)
    message = one_line_error(invoke("train", "--model", "gaussian", "--data", folder, "--out",
                                    tmp_path / "m"))
    assert "changed after it was prepared" in message and str(folder) in message
    assert not (tmp_path / "m").exists()


# -- 4. shards checked on read ------------------------------------------------------------------
def test_a_replaced_or_damaged_shard_is_caught_when_read(data, tmp_path):
    model, out = train(data, tmp_path / "m", seed=0), tmp_path / "s"
    assert invoke("sample", "--model-dir", model, "--out", out, *SHARDS).exit_code == 0
    assert invoke("facts", "--samples", out).exit_code == 0
    first, second = out / "part-00000.parquet", out / "part-00001.parquet"
    second.write_bytes(first.read_bytes())  # a valid parquet file, of the wrong shard
    assert "part-00001.parquet: its SHA-256" in one_line_error(invoke("facts", "--samples", out))
    second.write_bytes(b"garbage")
    assert "part-00001.parquet" in one_line_error(invoke("facts", "--samples", out))


@pytest.mark.parametrize("content", ["{\"format\": \"synthfin-pa", "garbage", "[]",
                                     "{\"format\": \"synthfin-paths/1\"}"])
def test_a_damaged_manifest_is_one_line(data, tmp_path, content):
    model, out = train(data, tmp_path / "m", seed=0), tmp_path / "s"
    assert invoke("sample", "--model-dir", model, "--out", out, *SHARDS).exit_code == 0
    (out / "_manifest.json").write_text(content)
    assert "_manifest.json" in one_line_error(invoke("facts", "--samples", out))


# -- 6. two writers ----------------------------------------------------------------------------
def test_a_second_run_on_a_folder_in_use_says_who_holds_it(tmp_path):
    run_dir = tmp_path / "run"
    with output_lock(run_dir):  # the first run, still going
        message = one_line_error(invoke("run", TINY, "--out", run_dir))
    assert f"{run_dir} is in use by pid {os.getpid()}" in message
    assert not run_dir.exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    (tmp_path / ".out.lock").write_text("pid 999999 on a host that died\n")  # no holder
    with output_lock(out):
        with pytest.raises(BusyError, match="in use by pid"):
            with output_lock(out):
                pass
    assert not (tmp_path / ".out.lock").exists()  # released with its holder


def test_leftovers_of_killed_writers_are_removed_by_the_next_command(data, tmp_path):
    model = train(data, tmp_path / "m", seed=0)
    samples = tmp_path / "s.npy"
    leftover = tmp_path / ".s.npy.k1ll3d.tmp"  # what SIGKILL leaves behind a SampleWriter
    leftover.write_bytes(b"\0" * 1000)
    inside = tmp_path / "m" / ".weights.safetensors.k1ll3d.tmp"
    inside.write_bytes(b"\0")
    assert invoke("sample", "--model-dir", model, "--out", samples, "--n", 10).exit_code == 0
    assert not leftover.exists()
    train(data, model, seed=0)
    assert not inside.exists()


# -- 7. names that would escape their folder -----------------------------------------------------
@pytest.mark.parametrize("change", [{"name": "../../escape"},
                                    {"models": {"../../../escaped_model": {"model": "gaussian"}}},
                                    {"models": {"ok/../..": {"model": "gaussian"}}}])
def test_names_that_would_leave_the_run_folder_are_refused(tmp_path, change, monkeypatch):
    config = {**_tiny(), **change}
    path = tmp_path / "deep" / "er" / "p.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(path.parent)
    assert "cannot name a folder" in one_line_error(invoke("run", path))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "er", "p.yaml"]


def _tiny() -> dict:
    return yaml.safe_load(TINY.read_text())


# -- 8. what used to be tracebacks ---------------------------------------------------------------
def test_a_bad_date_or_crash_size_is_one_line(data, tmp_path):
    model = train(data, tmp_path / "m", seed=0)
    assert "'2025-13-01' is not a date" in one_line_error(invoke(
        "sample", "--model-dir", model, "--out", tmp_path / "s", *SHARDS, "--start-date",
        "2025-13-01"))
    assert "--crash must be a finite" in one_line_error(invoke(
        "stress", "--model-dir", model, "--data", data, "--strategy",
        "synthfin.backtest.harness:moving_average_crossover", "--out", tmp_path / "st",
        "--crash", "nan"))
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text(TINY.read_text().replace("start: 2008-01-01", "start: 2008-13-45"))
    assert "dates as YYYY-MM-DD" in one_line_error(invoke("run", yaml_file))


def test_the_seed_may_be_given_with_set_but_not_twice_differently(data, tmp_path):
    assert invoke("train", "--model", "gaussian", "--data", data, "--out", tmp_path / "a",
                  "--set", "seed=5").exit_code == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["seed"] == 5
    assert "disagree" in one_line_error(invoke(
        "train", "--model", "gaussian", "--data", data, "--out", tmp_path / "b", "--seed", 4,
        "--set", "seed=5"))


@pytest.mark.parametrize("content", ["[]", "{\"ticker\": \"SP5", "\"text\""])
def test_the_panel_benchmark_rebuilds_a_damaged_series_result(tmp_path, content, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    import benchmark_panel

    saved = tmp_path / "SP500.json"
    saved.write_text(content)
    assert benchmark_panel._saved_result(saved) is None
    assert benchmark_panel._saved_result(tmp_path / "missing.json") is None


# -- 9. a failed first sharded command does not block the corrected one --------------------------
def test_a_failed_first_sharded_command_leaves_nothing_in_the_way(data, tmp_path):
    model, out = train(data, tmp_path / "m", seed=0), tmp_path / "s"
    assert "panic" in one_line_error(invoke("sample", "--model-dir", model, "--out", out,
                                            *SHARDS, "--regime", "panic"))
    assert invoke("sample", "--model-dir", model, "--out", out, *SHARDS, "--regime", "calm"
                  ).exit_code == 0
    assert json.loads((out / "_manifest.json").read_text())["plan"]["regime"] == "calm"
    other = ("--n", 200, "--shard-size", 100, "--seed", 3, "--length", 20)  # finished shards
    assert "other settings" in one_line_error(invoke("sample", "--model-dir", model, "--out",
                                                     out, *other))
    (out / "_plan.json").write_text("{damaged")
    assert "_plan.json is damaged" in one_line_error(invoke("sample", "--model-dir", model,
                                                            "--out", out, *SHARDS))


# -- 10. the API's own errors ------------------------------------------------------------------
def test_the_api_names_bad_files_dates_and_sizes(data, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="bad.json is damaged"):
        OHLCVModel.load(bad)
    bars = sp500_ohlcv_model()
    with pytest.raises(DataError, match="one start price, or one per asset"):
        bars.sample(np.zeros((2, 5, 1)), [100.0, 50.0])
    with pytest.raises(DataError, match="each at least 1"):
        bars.sample(np.zeros((2, 0, 1)), 100.0)
    with pytest.raises(DataError, match="'2025-02-30' is not a date"):
        trading_days_after("2025-02-30", 5)
    synth = Synthesizer.from_parts(get_generator("gaussian")().fit(WindowData.load(data)),
                                   WindowData.load(data))
    with pytest.raises(DataError, match="'tomorrow' is not a date"):
        synth.sample(2, 5, start_date="tomorrow")
    with pytest.raises(ModelError, match="shock must be a finite"):
        synth.crash(2, 5, shock=float("nan"))
    path = synth.sample(2, 5, seed=0).save(tmp_path / "s.safetensors")
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"synthfin": json.dumps({"assets": []})})
    with pytest.raises(DataError, match="s.safetensors is damaged"):
        Scenarios.load(path)


# -- 11. small ones ------------------------------------------------------------------------------
def test_length_zero_and_an_infinite_learning_rate_are_refused_up_front(data, tmp_path):
    model = train(data, tmp_path / "m", seed=0)
    result = invoke("sample", "--model-dir", model, "--out", tmp_path / "s.npy", "--length", 0)
    assert result.exit_code == 2 and "'--length'" in result.output  # a usage error
    assert "greater than or equal to 1" in result.output and not (tmp_path / "s.npy").exists()
    with pytest.raises(ConfigError, match="lr=inf must be a finite number"):
        get_generator("cvae")(lr=float("inf"))


def test_resume_rewrites_a_damaged_history_copy(tmp_path):
    import torch

    from synthfin.models.training import TrainingLoop

    def loop(resume: bool) -> TrainingLoop:
        net = torch.nn.Linear(2, 1)
        return TrainingLoop({"net": net}, {"net": torch.optim.SGD(net.parameters(), lr=0.1)},
                            run_dir=tmp_path, resume=resume, progress=False)

    loop(False).run("fit", 2, lambda: {"loss": torch.tensor(1.0)}, 1)
    history = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text("garbage")
    loop(True).run("fit", 2, lambda: {"loss": torch.tensor(1.0)}, 1)  # already finished
    assert (tmp_path / "history.json").read_text() == history


def test_folders_get_the_usual_mode_under_the_umask(data, tmp_path):
    old = os.umask(0o022)
    try:
        model = train(data, tmp_path / "m", seed=0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(model.stat().st_mode) == 0o755


def test_an_interrupt_a_library_swallows_still_ends_the_command_with_130():
    # Python's own handler, as in a command started from a shell (a job started in the
    # background by a non-interactive shell inherits SIGINT ignored, and cannot be interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with _interrupts() as seen:
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:  # a library that catches it and carries on
            pass
    assert seen == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


TORCHRUN_FAILURE = """\
step 3 of 10
W1204 16:31:21.281000 7278 site-packages/torch/distributed/elastic/multiprocessing/api.py:1028] \
Sending process 7323 closing signal SIGTERM
E1204 16:31:21.297000 7278 site-packages/torch/distributed/elastic/multiprocessing/api.py:1002] \
failed (exitcode: -9) local_rank: 1 (pid: 7324) of binary: python
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "site-packages/torch/distributed/run.py", line 1032, in <module>
    main()
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
======================================================
launch.py FAILED
------------------------------------------------------
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 7323)  (SIGTERM)
------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 7324)  (SIGKILL)
  traceback : Signal 9 (SIGKILL) received by PID 7324
======================================================
"""


def test_torchruns_own_failure_report_becomes_one_clause(capsys):
    import sys

    launcher = _LauncherFilter(sys.stderr, verbose=False)
    data = TORCHRUN_FAILURE.encode()
    for lo in range(0, len(data), 97):  # as the pipe delivers it, in pieces
        launcher.feed(data[lo:lo + 97])
    launcher.close()
    assert capsys.readouterr().err == "step 3 of 10\n"
    assert launcher.root_cause() == "rank 1 failed first, exit code -9 (SIGKILL)"


def test_a_rank_traceback_that_is_not_torchruns_passes_through(capsys):
    import sys

    launcher = _LauncherFilter(sys.stderr, verbose=False)
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nZeroDivisionError: x\n'
    launcher.feed(text.encode())
    launcher.close()
    assert capsys.readouterr().err == text


def test_a_rank_that_fails_with_a_synthfin_error_prints_one_line(capsys):
    from synthfin.distributed import run_rank

    def lost() -> None:
        raise ModelError("rank 0 of 2: a collective failed\nin the gradient all_reduce")

    with pytest.raises(SystemExit) as exit_info:
        run_rank(lost)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == ("error: rank 0 of 2: a collective failed in the gradient "
                                       "all_reduce\n")


# -- a pipeline killed at each stage boundary --------------------------------------------------
def test_a_pipeline_killed_at_any_stage_boundary_ends_as_one_never_killed(tmp_path, monkeypatch):
    from synthfin.jobs.config import PipelineConfig
    from synthfin.jobs.pipeline import Pipeline, _Stage

    config = {**_tiny(), "models": {"gaussian": {}}, "sampling": {"n": 100, "regimes": ["calm"]}}

    def run(folder: Path) -> bytes:
        Pipeline(PipelineConfig.model_validate({**config, "output": str(folder)})).run()
        return (folder / "report" / "metrics.json").read_bytes()

    whole = run(tmp_path / "whole")
    complete = _Stage.complete
    for boundary in range(3):  # after the data, the model, the samples
        calls = []

        def killed(stage, seconds, boundary=boundary, calls=calls):
            complete(stage, seconds)
            calls.append(stage)
            if len(calls) > boundary:
                raise KeyboardInterrupt

        monkeypatch.setattr(_Stage, "complete", killed)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / f"killed{boundary}")
        monkeypatch.setattr(_Stage, "complete", complete)
        assert not (tmp_path / f".killed{boundary}.lock").exists()  # released on the way out
        assert run(tmp_path / f"killed{boundary}") == whole
