"""Sharded sampling: a partitioned parquet data set, resumable, the same for any number of ranks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from forked_ranks import launch
from typer.testing import CliRunner

from synthfin import distributed
from synthfin.cli import app
from synthfin.errors import DataError
from synthfin.jobs.shards import (
    MANIFEST,
    ShardPlan,
    dataset_facts,
    iter_paths,
    read_manifest,
    write_dataset,
)
from synthfin.models import get_generator
from synthfin.stats import fact_statistics

PLAN = ShardPlan(n=23, shard_size=10, length=12, seed=5, chunk_size=4)


@pytest.fixture(scope="module")
def model(two_asset_windows):
    return get_generator("garch")(seed=0).fit(two_asset_windows)


def _hashes(directory: Path) -> list[str]:
    return [record["sha256"] for record in read_manifest(directory)["shards"]]


def test_the_data_set_is_long_dated_priced_and_readable_as_one_table(model, tmp_path: Path
                                                                       ) -> None:
    manifest = write_dataset(model, tmp_path, PLAN)
    assert [r["paths"] for r in manifest["shards"]] == [[0, 10], [10, 20], [20, 23]]
    assert manifest["rows"] == 23 * 12 * 2
    table = pq.read_table(tmp_path)  # the folder as it is: _manifest.json and _shards/ skipped
    assert table.column_names == ["path", "date", "asset", "return", "price"]
    frame = table.to_pandas()
    assert len(frame) == manifest["rows"] and sorted(frame["path"].unique()) == list(range(23))
    one = frame[(frame["path"] == 13) & (frame["asset"] == "XOM")]
    assert (pd.to_datetime(one["date"]).dt.day_of_week < 5).all()  # Monday to Friday
    assert pd.Timestamp(one["date"].iloc[0]) == pd.Timestamp("2026-01-01")
    np.testing.assert_allclose(one["price"], 100 * np.exp(np.cumsum(one["return"])), rtol=1e-12)
    assert pq.ParquetFile(tmp_path / "part-00000.parquet").num_row_groups == 3  # 4 + 4 + 2 paths
    cube = np.concatenate(list(iter_paths(tmp_path, batch_paths=7)))
    assert cube.shape == (23, 12, 2)
    np.testing.assert_array_equal(cube[13, :, 1], one["return"])
    # shard k is the model's sample_chunks from the shard's own seed, whatever came before
    expected = np.concatenate(list(model.sample_chunks(10, seed=PLAN.seed_of(1), length=12,
                                                       chunk_size=4)))
    np.testing.assert_array_equal(cube[10:20], expected)


def test_finished_shards_are_skipped_and_damaged_ones_written_again(model, tmp_path: Path
                                                                      ) -> None:
    write_dataset(model, tmp_path, PLAN)
    first = _hashes(tmp_path)
    untouched = (tmp_path / "part-00000.parquet").stat().st_mtime_ns
    with open(tmp_path / "part-00001.parquet", "ab") as handle:  # damaged
        handle.write(b"x")
    (tmp_path / "_shards" / "00002.json").unlink()  # killed before its record was written
    (tmp_path / MANIFEST).unlink()
    write_dataset(model, tmp_path, PLAN)
    assert _hashes(tmp_path) == first
    assert (tmp_path / "part-00000.parquet").stat().st_mtime_ns == untouched


def test_other_settings_in_the_same_folder_are_refused(model, tmp_path: Path) -> None:
    write_dataset(model, tmp_path, PLAN)
    with pytest.raises(DataError, match="drawn with other settings"):
        write_dataset(model, tmp_path, ShardPlan(n=23, shard_size=10, length=12, seed=6))


def test_two_ranks_write_the_same_data_set_as_one(model, tmp_path: Path) -> None:
    write_dataset(model, tmp_path / "one", PLAN)

    def rank() -> None:
        distributed.setup(torch.device("cpu"))
        write_dataset(model, tmp_path / "two", PLAN)
        distributed.shutdown()

    assert launch(tmp_path, rank) == [0, 0]
    assert _hashes(tmp_path / "two") == _hashes(tmp_path / "one")
    plan = json.loads((tmp_path / "two" / MANIFEST).read_text())["plan"]
    assert ShardPlan(**plan) == PLAN


def test_dataset_facts_stream_the_in_memory_facts_of_its_windows(model, tmp_path: Path) -> None:
    write_dataset(model, tmp_path, PLAN)
    cube = np.concatenate(list(iter_paths(tmp_path)))  # (23, 12, 2)
    windows = cube[:, :10].reshape(-1, 5, 2)  # two windows of 5 days per path, 2 days dropped
    streamed, expected = dataset_facts(tmp_path, window=5), fact_statistics(windows)
    bound = windows.size * np.finfo(float).eps  # as in tests/evaluation/test_streaming.py
    for name in ("acf_abs", "leverage", "kurtosis", "agg_kurtosis", "cross_corr"):
        np.testing.assert_allclose(streamed[name], expected[name], rtol=bound, atol=bound)
    with pytest.raises(DataError, match="window must be between 2"):
        dataset_facts(tmp_path, window=13)


def test_the_commands_write_and_read_a_sharded_data_set(model, tmp_path: Path) -> None:
    model.save(tmp_path / "model")
    out = tmp_path / "paths"
    args = ["sample", "--model-dir", tmp_path / "model", "--out", out, "--n", 23, "--length",
            12, "--shard-size", 10, "--seed", 5]
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    assert "in 3 shards (552 rows)" in result.output
    result = CliRunner().invoke(app, ["facts", "--samples", str(out), "--out",
                                      str(tmp_path / "facts.json")])
    assert result.exit_code == 0, result.output
    assert "kurtosis" in result.output
    saved = json.loads((tmp_path / "facts.json").read_text())["synthetic"]
    np.testing.assert_array_equal(saved["hill"], dataset_facts(out)["hill"])
    result = CliRunner().invoke(app, ["facts", "--samples", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished sharded data set" in result.output


def test_ohlcv_columns_are_bars_around_the_closes(model, tmp_path: Path) -> None:
    plan = ShardPlan(n=6, shard_size=4, length=12, seed=5, chunk_size=4, ohlcv=True)
    manifest = write_dataset(model, tmp_path / "a", plan)
    assert manifest["columns"] == ["path", "date", "asset", "return", "price", "open", "high",
                                   "low", "volume"]
    frame = pq.read_table(tmp_path / "a").to_pandas()
    assert (frame["high"] >= frame[["open", "price"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "price"]].min(axis=1)).all()
    assert (frame["volume"] > 0).all()
    write_dataset(model, tmp_path / "b", dataclasses.replace(plan, ohlcv=False))
    plain = pq.read_table(tmp_path / "b").to_pandas()
    np.testing.assert_array_equal(frame["return"], plain["return"])  # the same closes
    write_dataset(model, tmp_path / "c", plan)
    assert _hashes(tmp_path / "c") == _hashes(tmp_path / "a")  # bars from the shard's stream
