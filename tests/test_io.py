import json
import os

import numpy as np
import pandas as pd
import pytest

from synthfin.errors import DataError
from synthfin.io import (
    SampleWriter,
    atomic_directory,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    load_samples,
    recover_directory,
    save_samples,
)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = atomic_write_text(tmp_path / "a.txt", "old")

    def half_then_fail(temp):
        temp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_json_refuses_nan_without_touching_the_file(tmp_path):
    target = atomic_write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "nested" / "r.html", "<html/>")
    finally:
        os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_samples_round_trip_through_npy_and_parquet(tmp_path, suffix):
    returns = np.random.default_rng(0).standard_normal((3, 5, 2))
    path = save_samples(tmp_path / f"s{suffix}", returns, ["A", "B"])
    np.testing.assert_array_equal(load_samples(path), returns)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{suffix}"]  # no temp file left


def test_samples_with_another_suffix_are_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"must end in \.npy or \.parquet, got 's.csv'"):
        save_samples(tmp_path / "s.csv", np.zeros((1, 2, 1)), ["A"])
    with pytest.raises(DataError, match="does not exist"):
        load_samples(tmp_path / "missing.npy")


def test_a_folder_killed_between_its_two_renames_is_put_back_by_the_next_reader(tmp_path):
    folder = tmp_path / "model"
    with atomic_directory(folder) as temp:
        (temp / "a.txt").write_text("old")
    os.replace(folder, tmp_path / ".model.old-1234")  # the kill: old aside, new not yet in place
    (tmp_path / ".model.tmp-5678").mkdir()            # and an unfinished new one
    recover_directory(folder)
    assert (folder / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["model"]


def test_a_failed_folder_write_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    folder = tmp_path / "model"
    with atomic_directory(folder) as temp:
        (temp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(folder) as temp:
        (temp / "a.txt").write_text("half")
        raise RuntimeError
    assert (folder / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["model"]


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_an_interrupted_sample_writer_leaves_no_file(tmp_path, suffix):
    with pytest.raises(KeyboardInterrupt), SampleWriter(tmp_path / f"s{suffix}", 4, 3,
                                                        ["A"]) as writer:
        writer.write(np.zeros((2, 3, 1)))
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataError, match="only 2 of 4 paths"), SampleWriter(
            tmp_path / f"s{suffix}", 4, 3, ["A"]) as writer:
        writer.write(np.zeros((2, 3, 1)))
    assert os.listdir(tmp_path) == []


def test_a_parquet_table_that_is_not_a_full_grid_is_a_data_error(tmp_path):
    path = save_samples(tmp_path / "s.parquet", np.ones((3, 4, 2)), ["A", "B"])
    frame = pd.read_parquet(path)
    frame.iloc[1:].to_parquet(path)
    with pytest.raises(DataError, match="s.parquet is not a samples file.*full grid"):
        load_samples(path)
