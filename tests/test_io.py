import json
import os

import numpy as np
import pytest

from synthfin.errors import DataError
from synthfin.io import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    load_samples,
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
