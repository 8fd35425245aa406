"""Tests for synthfin.data.files: the layouts people keep on disk (Yahoo / Stooq bars), and the
hint when returns are passed as prices. Files are built from the bundled closes, never fetched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthfin.cli import app
from synthfin.data.files import read_bars, wide_prices
from synthfin.data.sources import load_prices
from synthfin.data.validation import validate_prices
from synthfin.errors import DataError


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    return load_prices("bundled", ["JPM", "XOM"], start="2016-01-01")


def yahoo_bars(close: pd.Series) -> pd.DataFrame:
    """A Yahoo-style bar table: Date, Open, High, Low, Close, Adj Close, Volume."""
    raw = close.to_numpy() * 1.02  # the unadjusted close differs from the adjusted one
    return pd.DataFrame({"Date": close.index.strftime("%Y-%m-%d"), "Open": raw * 0.999,
                         "High": raw * 1.01, "Low": raw * 0.99, "Close": raw,
                         "Adj Close": close.to_numpy(), "Volume": np.full(len(close), 1e7)})


def test_yahoo_csv_of_one_stock_is_one_ticker_of_adjusted_closes(tmp_path, closes):
    yahoo_bars(closes["JPM"]).to_csv(tmp_path / "JPM.csv", index=False)
    prices = load_prices(tmp_path / "JPM.csv")
    assert list(prices.columns) == ["JPM"]  # not six "tickers"
    np.testing.assert_allclose(prices["JPM"], closes["JPM"])


def test_stooq_csv_without_adj_close_keeps_the_close(tmp_path, closes):
    bars = yahoo_bars(closes["XOM"]).drop(columns="Adj Close")
    bars.to_csv(tmp_path / "xom.us.csv", index=False)
    prices = load_prices(tmp_path / "xom.us.csv")
    np.testing.assert_allclose(prices["xom.us"], closes["XOM"] * 1.02)


def test_yfinance_two_row_header_csv_and_parquet_keep_the_tickers(tmp_path, closes):
    fields = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]
    columns = pd.MultiIndex.from_product([fields, ["JPM", "XOM"]], names=["Price", "Ticker"])
    frame = pd.DataFrame(np.tile(closes.to_numpy(), 6), index=closes.index.rename("Date"),
                         columns=columns)
    frame.xs("JPM", axis=1, level=1, drop_level=False).to_csv(tmp_path / "one.csv")
    assert list(load_prices(tmp_path / "one.csv").columns) == ["JPM"]
    frame.to_csv(tmp_path / "two.csv")
    frame.to_parquet(tmp_path / "two.parquet")
    for name in ("two.csv", "two.parquet"):
        pd.testing.assert_frame_equal(load_prices(tmp_path / name), closes, check_freq=False)
    assert read_bars(tmp_path / "two.csv", "XOM")["Close"].iloc[-1] == closes["XOM"].iloc[-1]


def test_read_bars_keeps_open_high_low_close_volume(tmp_path, closes):
    yahoo_bars(closes["JPM"]).to_csv(tmp_path / "JPM.csv", index=False)
    bars = read_bars(tmp_path / "JPM.csv")
    assert list(bars.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert (bars["Low"] <= bars["Open"]).all() and bars.index[0] == closes.index[0]


def test_bar_fields_mixed_with_ticker_columns_are_an_ambiguity_error(closes):
    frame = pd.DataFrame({"Date": ["2020-01-02"], "Close": [1.0], "JPM": [2.0]})
    with pytest.raises(DataError, match="one ticker's bars or one column per ticker"):
        wide_prices(frame)


def test_returns_passed_as_prices_get_a_hint(tmp_path, closes):
    returns = np.log(closes[["JPM"]]).diff().fillna(0.0)
    returns.to_csv(tmp_path / "returns.csv")
    with pytest.raises(DataError, match="look like returns, not prices"):
        load_prices(tmp_path / "returns.csv")


def test_negative_prices_that_are_not_returns_get_no_hint(closes):
    prices = closes[["JPM"]].copy()
    prices.iloc[3] = -1.0
    with pytest.raises(DataError, match="non-positive") as raised:
        validate_prices(prices)
    assert "returns" not in str(raised.value)


def test_a_yahoo_csv_prepares_trains_and_samples_with_one_command_each(tmp_path, closes):
    yahoo_bars(closes["JPM"]).to_csv(tmp_path / "JPM.csv", index=False)
    runner = CliRunner()
    steps = [["prepare", "--source", tmp_path / "JPM.csv", "--out", tmp_path / "D"],
             ["train", "--model", "garch", "--data", tmp_path / "D", "--out", tmp_path / "M"],
             ["sample", "--model-dir", tmp_path / "M", "--n", 50, "--out", tmp_path / "s.npy"]]
    for step in steps:
        result = runner.invoke(app, [str(part) for part in step])
        assert result.exit_code == 0, result.output
    assert "prepared JPM" in runner.invoke(app, [str(p) for p in steps[0]]).output
    assert np.load(tmp_path / "s.npy").shape == (50, 64, 1)


def test_damaged_yahoo_headers_and_empty_bar_files_are_data_errors(tmp_path):
    (tmp_path / "blank.csv").write_text("Price,Close\nTicker,\nDate,\n2020-01-02,1\n")
    (tmp_path / "empty.csv").write_text("Price,Close\nTicker,JPM\n")
    with pytest.raises(DataError, match="no ticker under Close"):
        load_prices(tmp_path / "blank.csv")
    with pytest.raises(DataError, match="has no bars"):
        read_bars(tmp_path / "empty.csv")
