"""Pipelines end to end on a seconds-long YAML: artifacts, stage reuse, clear config errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from synthfin.cli import app
from synthfin.errors import SynthfinError
from synthfin.evaluation.scores import ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL
from synthfin.jobs.config import load_pipeline_config
from synthfin.jobs.pipeline import Pipeline
from synthfin.synthesizer import Synthesizer

TINY = Path(__file__).parents[1] / "pipelines" / "tiny.yaml"


def write_config(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw.update(changes)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = load_pipeline_config(TINY, output=str(tmp / "out"))
    return config, Pipeline(config).run()


def test_a_run_writes_every_artifact(first_run):
    config, result = first_run
    run = result.run_dir
    assert json.loads((run / "config.json").read_text())["name"] == "tiny"
    assert (run / "data" / "meta.json").is_file()
    assert "fingerprint" in json.loads((run / "data" / "meta.json").read_text())
    for name in config.models:
        assert (run / "models" / name / "model" / "weights.safetensors").is_file()
        samples = np.load(run / "samples" / name / "samples.npy")
        assert samples.shape == (200, 32, 1)
    assert (run / "models" / "ar" / "training" / "history.json").is_file()
    assert (run / "models" / "ar" / "training" / "best.safetensors").is_file()
    for file in ("metrics.json", "report.html", "report.md", "regime_vol.json"):
        assert (run / "report" / file).is_file()
    regime_vol = json.loads((run / "report" / "regime_vol.json").read_text())
    assert regime_vol["gjr"]["stressed"] > regime_vol["gjr"]["calm"]
    report = (run / "report" / "report.md").read_text()  # the regime table is in the report
    assert f"| gjr | {regime_vol['gjr']['calm']:.3g} |" in report
    for reference in ("in_sample", "out_of_sample"):
        assert list(result.summary.loc[reference].index) == [
            *config.models, ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL]
    assert not any(stage["reused"] for stage in result.stages)


def test_a_second_run_reuses_every_stage(first_run):
    config, _ = first_run
    again = Pipeline(config).run()
    assert all(stage["reused"] for stage in again.stages)


def test_editing_one_model_retrains_only_that_model(first_run):
    config, _ = first_run
    models = {**config.models, "gjr": {**config.models["gjr"], "dist": "skewt"}}
    result = Pipeline(config.model_copy(update={"models": models})).run()
    ran = {stage["stage"] for stage in result.stages if not stage["reused"]}
    assert ran == {"model gjr", "samples gjr", "evaluation"}


def test_cli_run_prints_stages_and_summary(tmp_path):
    result = CliRunner().invoke(app, ["run", str(TINY), "--out", str(tmp_path / "o"),
                                      "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "model ar" in result.output and "acf_abs /floor" in result.output
    assert json.loads((tmp_path / "o" / "config.json").read_text())["seed"] == 1


@pytest.mark.parametrize("changes, message", [
    ({"models": {"nope": {}}}, "unknown generator 'nope'"),
    ({"data": {"window": 1}}, "data.window"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"models": {}}, "models"),
])
def test_bad_yaml_gives_a_clear_error(tmp_path, changes, message):
    with pytest.raises(SynthfinError, match=message):
        load_pipeline_config(write_config(tmp_path, **changes))


def test_unparsable_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SynthfinError, match="not valid YAML"):
        load_pipeline_config(bad)
    with pytest.raises(SynthfinError, match="no such pipeline file"):
        load_pipeline_config(tmp_path / "missing.yaml")
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_a_failing_stage_keeps_earlier_outputs(tmp_path, monkeypatch):
    config = load_pipeline_config(TINY, output=str(tmp_path / "out"))
    from synthfin.models.baselines import GaussianGenerator

    def broken(self, data, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(GaussianGenerator, "_fit", broken)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(config).run()
    run = tmp_path / "out"
    assert (run / "models" / "ar" / "stage.json").is_file()
    assert not (run / "models" / "gaussian" / "stage.json").exists()
    monkeypatch.undo()
    result = Pipeline(config).run()
    ran = {stage["stage"] for stage in result.stages if not stage["reused"]}
    assert ran == {"model gaussian", "samples gaussian", "evaluation"}


@pytest.mark.parametrize("path", sorted(TINY.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_validates(path):
    config = load_pipeline_config(path)
    assert config.models and config.data.window_len >= 2


def test_the_yaml_window_is_the_window_len_of_the_one_data_settings_type(tmp_path):
    config = load_pipeline_config(write_config(tmp_path, data={"window": 24}))
    assert config.data.window_len == 24
    assert config.data.model_dump(by_alias=True)["window"] == 24
    with pytest.raises(SynthfinError, match="Synthesizer data settings: window"):
        Synthesizer("garch", window_len=1)


# -- issue 17: settings checked before any work, outputs hashed, progress lines --------------
@pytest.mark.parametrize("changes, message", [
    ({"models": {"ar": {"epochs": "abc"}}}, "epochs='abc' must be an integer"),
    ({"models": {"ar": {"epochs": 0}}}, "epochs=0 must be >= 1"),
    ({"models": {"fast": {"model": "cvae", "lr": -1}}}, "fast: model 'cvae': setting lr=-1.0"),
    ({"sampling": {"regimes": ["panic"]}}, "unknown regime(s) 'panic'"),
    ({"seed": -1}, "seed"),
])
def test_bad_settings_fail_at_load_before_the_data_stage(tmp_path, changes, message):
    path = write_config(tmp_path, **changes)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_deleted_or_damaged_output_reruns_its_stage(first_run):
    config, _ = first_run
    Pipeline(config).run()  # back to this config after the test that edits gjr
    run = config.output_dir
    (run / "samples" / "gjr" / "samples_calm.npy").unlink()
    weights = run / "models" / "gaussian" / "model" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    again = Pipeline(config).run()
    ran = {stage["stage"] for stage in again.stages if not stage["reused"]}
    assert ran == {"samples gjr", "model gaussian"}
    assert (run / "samples" / "gjr" / "samples_calm.npy").is_file()
    marker = json.loads((run / "models" / "gaussian" / "stage.json").read_text())
    assert set(marker["outputs"]) == {"model/config.json", "model/data.json",
                                      "model/weights.safetensors"}
    assert all(len(digest) == 64 for digest in marker["outputs"].values())


def test_run_prints_a_line_when_each_stage_starts_and_ends(tmp_path):
    path = write_config(tmp_path, models={"gaussian": {}}, sampling={"n": 50})
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    for stage in ("data", "model gaussian", "samples gaussian", "evaluation"):
        assert lines.index(f"{stage}: running") < next(
            i for i, line in enumerate(lines) if line.startswith(f"{stage}: done in "))
    again = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert "model gaussian: reused in" in again.output and "running" not in again.output


def test_training_reports_its_epochs_while_the_stage_runs(tmp_path):
    """A model's epochs reach the terminal between its stage's start and end lines, even with
    the model's progress bar off (progress: false)."""
    ar = {"epochs": 3, "hidden": 8, "pretrained": None, "stationary_days": 252,
          "progress": False, "patience": 10}
    path = write_config(tmp_path, models={"ar": ar}, sampling={"n": 20})
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def where(start: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(start))

    first, last = where("model ar: mle: epoch 1/3, nll "), where("model ar: mle: epoch 3/3, ")
    assert where("model ar: running") < first < last < where("model ar: done in")
    assert "validation" in lines[last]


def test_a_run_counts_whole_paths_beyond_the_plausibility_bound(two_asset_windows):
    """The report reads each path's first window; the run's warnings count whole paths."""
    paths = np.zeros((10, 300, 2))
    paths[3, 250, 1] = 1.5  # after the first window
    messages = Pipeline._implausible(two_asset_windows, {"bad": paths, "good": paths[:3]})
    assert len(messages) == 1 and messages[0].startswith("IMPLAUSIBLE: samples 'bad'")
    assert "1 of 10 paths" in messages[0]
