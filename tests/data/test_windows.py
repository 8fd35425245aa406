import numpy as np
import pytest

from synthfin.data.windows import SPLIT_NAMES, WindowData, make_windows
from synthfin.errors import DataError


def test_windows_have_the_requested_shape_and_content(sp500_windows, sp500_returns):
    data = sp500_windows
    assert data.train.windows.shape[1:] == (64, 1)
    first = data.train.start_dates[0]
    start = sp500_returns.index.get_loc(first)
    expected = data.scaler.transform(sp500_returns.to_numpy()[start:start + 64])
    np.testing.assert_allclose(data.train.windows[0], expected)
    assert start == data.vol_lookback  # the first window's vol condition is fully observed


def test_no_window_straddles_a_split_boundary(sp500_windows, sp500_returns):
    dates = sp500_returns.index
    previous_last_day = None
    for name in SPLIT_NAMES:
        part = sp500_windows.split(name)
        first_day, last_day = (np.datetime64(d) for d in sp500_windows.split_dates[name])
        starts = dates.get_indexer(part.start_dates)
        window_last_days = dates[starts + sp500_windows.window_len - 1]
        assert (part.start_dates >= first_day).all() and (window_last_days <= last_day).all()
        if previous_last_day is not None:
            assert first_day > previous_last_day
        previous_last_day = last_day


def test_scaler_and_regimes_are_fitted_on_train_only(sp500_returns):
    data = make_windows(sp500_returns, 32)
    train_days = len(data.train.returns)
    np.testing.assert_allclose(data.scaler.mean_, sp500_returns.to_numpy()[:train_days].mean(0))
    altered = sp500_returns.copy()
    altered.iloc[train_days:] *= 3.0  # a wild future must not move anything fitted on train
    other = make_windows(altered, 32)
    np.testing.assert_array_equal(other.scaler.std_, data.scaler.std_)
    np.testing.assert_array_equal(other.regimes.thresholds_, data.regimes.thresholds_)
    assert other.test.regimes.mean() > data.test.regimes.mean()


def test_stride_and_date_split(sp500_returns):
    data = make_windows(sp500_returns, 20, stride=5, split=("2010-12-31", "2015-12-31"))
    assert (np.diff(data.train.start_dates.asi8) > 0).all()
    assert data.split_dates["train"][1] <= "2010-12-31" < data.split_dates["val"][0]
    assert data.split_dates["val"][1] <= "2015-12-31" < data.split_dates["test"][0]
    positions = sp500_returns.index.get_indexer(data.val.start_dates)
    assert set(np.diff(positions)) == {5}


def test_save_load_round_trip_keeps_every_array(sp500_windows, tmp_path):
    sp500_windows.save(tmp_path)
    loaded = WindowData.load(tmp_path)
    assert loaded.fingerprint() == sp500_windows.fingerprint()
    assert loaded.summary().equals(sp500_windows.summary())
    assert not list(tmp_path.glob("*.tmp"))


def test_short_history_and_bad_splits_are_explained(sp500_returns):
    with pytest.raises(DataError, match="history too short"):
        make_windows(sp500_returns.iloc[:100], 64)
    with pytest.raises(DataError, match="fewer than one window"):
        make_windows(sp500_returns.iloc[:1000], 64, split=(0.9, 0.05, 0.05))
    with pytest.raises(DataError, match="sum to 1"):
        make_windows(sp500_returns, 64, split=(0.5, 0.2, 0.2))
    with pytest.raises(DataError, match="not a prepared data set"):
        WindowData.load("/nonexistent")


def test_day_regimes_agree_with_window_labels(sp500_windows, sp500_returns):
    codes = sp500_windows.day_regimes("train")
    starts = sp500_returns.index.get_indexer(sp500_windows.train.start_dates)
    np.testing.assert_array_equal(codes[starts], sp500_windows.train.regimes)
    assert (codes[:sp500_windows.vol_lookback] == -1).all()
