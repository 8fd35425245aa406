"""Property-based tests: whatever bytes a user's file holds, synthfin answers with its own
error (a :class:`~synthfin.errors.SynthfinError`, one line for the CLI) or a valid result, never
another exception. Fuzzed: the price loaders (CSV, gzipped CSV, parquet), the pipeline YAML
loader, the model-folder loader and the other artifacts' (prepared data, sharded data sets,
scenario files, the bar model)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthfin.data.sources import load_prices
from synthfin.errors import ModelError, SynthfinError
from synthfin.jobs.config import PipelineConfig, load_pipeline_config
from synthfin.models import Generator, get_generator

TINY = Path(__file__).parents[1] / "pipelines" / "tiny.yaml"
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # trimmed or filled rows
              # a damaged windows.npz is printed in full when an example fails: no need to warn
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def damaged(good: bytes) -> st.SearchStrategy[bytes]:
    """``good`` truncated, with bytes overwritten, or replaced by random bytes."""
    cut = st.integers(0, len(good)).map(lambda i: good[:i])
    flipped = st.lists(st.tuples(st.integers(0, max(0, len(good) - 1)), st.integers(0, 255)),
                       min_size=1, max_size=8).map(lambda edits: _overwrite(good, edits))
    return st.one_of(cut, flipped, st.binary(max_size=400))


def _overwrite(good: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(good)
    for position, value in edits:
        if data:
            data[position] = value
    return bytes(data)


def prices_frame() -> pd.DataFrame:
    days = pd.bdate_range("2020-01-01", periods=30, name="date")
    return pd.DataFrame({"A": np.linspace(100, 110, 30), "B": np.linspace(50, 40, 30)},
                        index=days)


def as_bytes(frame: pd.DataFrame, suffix: str) -> bytes:
    buffer = io.BytesIO()
    if suffix == ".parquet":
        frame.to_parquet(buffer)
    else:
        frame.to_csv(buffer, compression="gzip" if suffix == ".csv.gz" else None)
    return buffer.getvalue()


def loads_or_fails_cleanly(load) -> object | None:
    """What ``load()`` returns, or None when it raised a synthfin error (anything else fails)."""
    try:
        return load()
    except SynthfinError:
        return None


# -- price files -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_a_damaged_price_file_loads_validated_or_fails_with_a_data_error(tmp_path, suffix):
    good = as_bytes(prices_frame(), suffix)

    @FUZZ
    @given(data=damaged(good))
    def check(data: bytes) -> None:
        path = tmp_path / f"prices{suffix}"
        path.write_bytes(data)
        prices = loads_or_fails_cleanly(lambda: load_prices(path))
        if prices is not None:
            assert isinstance(prices.index, pd.DatetimeIndex) and (prices > 0).all().all()
            assert prices.index.is_monotonic_increasing and not prices.isna().any().any()

    check()


csv_cell = st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(-10**15, 10**15), st.dates().map(str))


@FUZZ
@given(header=st.lists(st.text(max_size=8), min_size=1, max_size=4),
       rows=st.lists(st.lists(csv_cell, min_size=1, max_size=4), max_size=12))
def test_any_csv_text_loads_validated_or_fails_with_a_data_error(tmp_path_factory, header, rows):
    path = tmp_path_factory.mktemp("csv") / "prices.csv"
    lines = [",".join(header)] + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
    loads_or_fails_cleanly(lambda: load_prices(path))


# -- pipeline YAML ---------------------------------------------------------------------------
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12)


@FUZZ
@given(data=damaged(TINY.read_bytes()))
def test_a_damaged_pipeline_yaml_loads_or_fails_with_a_synthfin_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("yaml") / "pipeline.yaml"
    path.write_bytes(data)
    config = loads_or_fails_cleanly(lambda: load_pipeline_config(path))
    assert config is None or isinstance(config, PipelineConfig)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["name", "seed", "device", "data", "models",
                                                "sampling", "evaluation", "output"]),
                               yaml_values, max_size=3),
       model_settings=st.dictionaries(st.sampled_from(["epochs", "lr", "hidden", "seed",
                                                       "model", "progress", "batch_size"]),
                                      yaml_values, max_size=3))
def test_any_pipeline_settings_load_or_fail_with_a_synthfin_error(tmp_path_factory, changes,
                                                                  model_settings):
    raw = yaml.safe_load(TINY.read_text())
    raw["models"]["ar"] = {**raw["models"]["ar"], **model_settings}
    raw.update(changes)
    path = tmp_path_factory.mktemp("yaml") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    loads_or_fails_cleanly(lambda: load_pipeline_config(path))


# -- model folders ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, two_asset_windows) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    models = {"garch": get_generator("garch")(),
              "ar": get_generator("ar")(epochs=1, hidden=4, layers=1, pretrained=None,
                                        stationary_days=252, progress=False, device="cpu")}
    return {name: model.fit(two_asset_windows).save(folder / name)
            for name, model in models.items()}


@pytest.mark.parametrize("file", ["config.json", "data.json", "weights.safetensors"])
@pytest.mark.parametrize("model", ["garch", "ar"])
def test_a_damaged_model_file_loads_or_fails_with_a_model_error(saved_models, tmp_path, model,
                                                                file):
    good = (saved_models[model] / file).read_bytes()

    @FUZZ
    @given(data=damaged(good))
    def check(data: bytes) -> None:
        folder = tmp_path / "model"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(saved_models[model], folder)
        (folder / file).write_bytes(data)
        try:
            generator = Generator.load(folder)
        except ModelError:
            return
        try:  # damage that still parses (a changed number) may still give bad samples
            samples = generator.sample_returns(3, seed=0)
        except SynthfinError:
            return
        assert samples.shape[0] == 3 and np.isfinite(samples).all()

    check()


# -- the other artifacts: prepared data, sharded data sets, scenarios, the bar model ----------
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, two_asset_windows) -> dict[str, Path]:
    from synthfin.jobs.shards import ShardPlan, write_dataset
    from synthfin.scenarios.ohlcv import sp500_ohlcv_model
    from synthfin.synthesizer import Synthesizer

    folder = tmp_path_factory.mktemp("artifacts")
    two_asset_windows.save(folder / "data")
    model = get_generator("gaussian")().fit(two_asset_windows)
    write_dataset(model, folder / "shards", ShardPlan(20, 10, 5, chunk_size=5))
    Synthesizer.from_parts(model, two_asset_windows).sample(3, 5, seed=0).save(
        folder / "scenarios.safetensors")
    sp500_ohlcv_model().save(folder / "bars.json")
    return {"data/meta.json": folder / "data", "data/windows.npz": folder / "data",
            "shards/_manifest.json": folder / "shards",
            "shards/part-00001.parquet": folder / "shards",
            "scenarios.safetensors": folder / "scenarios.safetensors",
            "bars.json": folder / "bars.json"}


def _read_artifact(name: str, path: Path) -> object:
    from synthfin.data.windows import WindowData
    from synthfin.jobs.shards import dataset_facts
    from synthfin.scenarios.ohlcv import OHLCVModel
    from synthfin.scenarios.paths import Scenarios

    if name.startswith("data/"):
        return WindowData.load(path)
    if name.startswith("shards/"):
        return dataset_facts(path)
    return Scenarios.load(path) if name.endswith(".safetensors") else OHLCVModel.load(path)


@pytest.mark.parametrize("name", ["data/meta.json", "data/windows.npz", "shards/_manifest.json",
                                  "shards/part-00001.parquet", "scenarios.safetensors",
                                  "bars.json"])
def test_a_damaged_artifact_loads_unchanged_or_fails_with_a_synthfin_error(
        artifacts, two_asset_windows, tmp_path, name):
    source = artifacts[name]
    file = source / name.split("/", 1)[1] if source.is_dir() else source
    good = file.read_bytes()

    @FUZZ
    @given(data=damaged(good))
    def check(data: bytes) -> None:
        copy = tmp_path / source.name
        shutil.rmtree(copy, ignore_errors=True)
        copy.unlink(missing_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy)
        (copy / file.name if source.is_dir() else copy).write_bytes(data)
        read = loads_or_fails_cleanly(lambda: _read_artifact(name, copy))
        if read is not None and name.startswith("data/"):  # checked against its fingerprint
            assert read.fingerprint() == two_asset_windows.fingerprint()
        if read is not None and name.startswith("shards/part"):  # checked against its SHA-256
            assert data == good

    check()
