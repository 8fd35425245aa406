"""Tests for synthfin.data.sources: bundled data, files, validation and the Yahoo cache.

Yahoo Finance is never reached: ``yfinance.download`` is replaced by :class:`FakeYahoo`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yfinance
from typer.testing import CliRunner
from yfinance.exceptions import YFRateLimitError

from synthfin.cli import app
from synthfin.data import yahoo as yahoo_source
from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.sources import load_prices
from synthfin.data.validation import validate_prices
from synthfin.data.yahoo import download_prices
from synthfin.errors import DataError, DownloadError

RATE_LIMIT_LOG = "['SPY']: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"


def close_on(symbol: str, day: pd.Timestamp) -> float:
    """A made-up adjusted close: positive, and the same in every download."""
    return 100.0 + 10 * len(symbol) + 0.5 * (day - pd.Timestamp("2024-01-01")).days


class FakeYahoo:
    """Stands in for ``yfinance.download``: business-day bars, ``end`` exclusive, calls kept.

    ``missing`` maps a symbol to days without a bar; symbols in ``unknown`` get no data, as
    Yahoo does for delisted ones. The first ``failures`` calls raise ``error``; the first
    ``logged_failures`` calls log a rate limit and return nothing, as yfinance does.
    """

    def __init__(self, *, flat=False, tz=None, missing=None, unknown=(), scale=1.0):
        self.flat, self.tz, self.scale = flat, tz, scale
        self.missing = {symbol: pd.DatetimeIndex(days) for symbol, days in (missing or {}).items()}
        self.unknown = set(unknown)
        self.failures, self.error, self.logged_failures = 0, None, 0
        self.failure_log = RATE_LIMIT_LOG  # what a logged failure says
        self.calls: list[dict] = []

    def __call__(self, tickers, start, end, **options):
        self.calls.append({"tickers": list(tickers), "start": start, "end": end, **options})
        if self.failures:
            self.failures -= 1
            raise self.error
        last = pd.Timestamp(end) - pd.Timedelta(days=1)
        days = pd.DatetimeIndex(pd.bdate_range(start, last), freq=None, name="Date")
        if self.logged_failures:
            self.logged_failures -= 1
            logging.getLogger("yfinance").error(self.failure_log)
            days = days[:0]
        columns = {}
        for symbol in tickers:
            close = pd.Series([close_on(symbol, day) * self.scale for day in days], index=days)
            close[close.index.isin(self.missing.get(symbol, []))] = np.nan
            if symbol in self.unknown:
                logging.getLogger("yfinance").error(f"['{symbol}']: possibly delisted; no timezone")
                close[:] = np.nan
            columns.update({("Close", symbol): close, ("Volume", symbol): close * 0 + 1e6})
        frame = pd.DataFrame(columns, index=days).dropna(how="all")
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
        if self.tz is not None:
            frame.index = frame.index.tz_localize(self.tz)
        return frame.droplevel("Ticker", axis=1) if self.flat else frame


@pytest.fixture(autouse=True)
def sleeps(monkeypatch, tmp_path) -> list[float]:
    """No network, no real sleeping, no writes to ~/.cache; returns the recorded sleeps."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach Yahoo Finance")

    monkeypatch.setattr(yfinance, "download", refuse)
    monkeypatch.setenv("SYNTHFIN_CACHE_DIR", str(tmp_path / "env-cache"))
    recorded: list[float] = []
    monkeypatch.setattr(yahoo_source, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def yahoo(monkeypatch):
    """Install a FakeYahoo built with the given options; return it."""

    def install(**options) -> FakeYahoo:
        fake = FakeYahoo(**options)
        monkeypatch.setattr(yfinance, "download", fake)
        return fake

    return install


def frame_of(columns: dict[str, list[float]], start: str = "2024-01-01") -> pd.DataFrame:
    length = len(next(iter(columns.values())))
    index = pd.bdate_range(start, periods=length, name="date")
    return pd.DataFrame(columns, index=index, dtype="float64")


def expected_closes(symbol: str, start: str, end: str) -> pd.Series:
    days = pd.DatetimeIndex(pd.bdate_range(start, end), freq=None, name="date")
    return pd.Series([close_on(symbol, day) for day in days], index=days, name=symbol)


# --- bundled data -------------------------------------------------------------------------


def test_bundled_default_is_the_sp500_as_a_tidy_float_frame():
    prices = load_prices()
    assert list(prices.columns) == ["SP500"]
    assert prices["SP500"].dtype == np.float64
    assert isinstance(prices.index, pd.DatetimeIndex) and prices.index.name == "date"
    assert prices.index.tz is None and (prices.index == prices.index.normalize()).all()
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert prices.index[0] == pd.Timestamp("1990-01-02")
    assert prices.index[-1] == pd.Timestamp("2022-12-28")
    assert len(prices) > 8000 and prices.notna().all().all()


def test_bundled_start_and_end_are_inclusive():
    prices = load_prices("bundled", "SP500", start="2020-01-02", end="2020-01-31")
    assert prices.index[0] == pd.Timestamp("2020-01-02")
    assert prices.index[-1] == pd.Timestamp("2020-01-31")
    assert len(prices) == 21


def test_bundled_tickers_come_back_in_the_requested_order():
    prices = load_prices("bundled", ["MSFT", "SP500", "AAPL"], "2010-01-01", "2010-12-31")
    assert list(prices.columns) == ["MSFT", "SP500", "AAPL"]
    assert (prices.dtypes == np.float64).all() and prices.notna().all().all()
    assert len(BUNDLED_TICKERS) == 21


def test_unknown_bundled_ticker_lists_the_available_ones():
    with pytest.raises(DataError, match=r"no bundled prices for TSLA; available: SP500, AAPL"):
        load_prices("bundled", ["AAPL", "TSLA"])


def test_start_after_end_is_rejected():
    with pytest.raises(DataError, match="start=2021-01-01 is after end=2020-01-01"):
        load_prices(start="2021-01-01", end="2020-01-01")


def test_range_outside_the_data_says_what_the_data_cover():
    with pytest.raises(DataError, match="no prices in the bundled data.*1990-01-02 to 2022-12-28"):
        load_prices(start="2023-06-01")


# --- files --------------------------------------------------------------------------------


@pytest.fixture
def stocks() -> pd.DataFrame:
    return load_prices("bundled", ["AAPL", "MSFT"], "2021-01-04", "2021-03-31")


def assert_same_prices(loaded: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(loaded.columns) == list(expected.columns)
    assert (loaded.index == expected.index).all() and loaded.index.name == "date"
    np.testing.assert_allclose(loaded.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_wide_csv_round_trips(tmp_path, stocks):
    path = tmp_path / "prices.csv"
    stocks.to_csv(path)
    assert_same_prices(load_prices(path), stocks)


def test_wide_csv_gz_with_capitalised_date_column_round_trips(tmp_path, stocks):
    path = tmp_path / "prices.csv.gz"
    stocks.rename_axis("Date").to_csv(path)
    assert_same_prices(load_prices(str(path), ["MSFT"]), stocks[["MSFT"]])


def test_wide_parquet_with_a_date_index_round_trips(tmp_path, stocks):
    path = tmp_path / "prices.parquet"
    stocks.to_parquet(path)
    assert_same_prices(load_prices(path), stocks)


def test_long_csv_is_pivoted_preferring_adj_close(tmp_path, stocks):
    long = stocks.reset_index().melt(id_vars="date", var_name="Symbol", value_name="Adj Close")
    long["Close"] = long["Adj Close"] * 2  # unadjusted: must be ignored
    path = tmp_path / "long.csv"
    long.rename(columns={"date": "Date"}).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    assert_same_prices(load_prices(path, ["AAPL", "MSFT"]), stocks)


def test_long_parquet_round_trips(tmp_path, stocks):
    long = stocks.reset_index().melt(id_vars="date", var_name="ticker", value_name="value")
    path = tmp_path / "long.parquet"
    long.to_parquet(path)
    assert_same_prices(load_prices(path, ["MSFT", "AAPL"]), stocks[["MSFT", "AAPL"]])


def test_long_file_with_a_repeated_date_and_ticker_is_rejected(tmp_path, stocks):
    long = stocks.reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    path = tmp_path / "long.csv"
    pd.concat([long, long.head(1)]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"1 repeated \(date, ticker\) row: AAPL 2021-01-04"):
        load_prices(path)


def test_ticker_missing_from_a_file_lists_the_columns(tmp_path, stocks):
    path = tmp_path / "prices.csv"
    stocks.to_csv(path)
    with pytest.raises(DataError, match="has no column for TSLA; available: AAPL, MSFT"):
        load_prices(path, ["AAPL", "TSLA"])


def test_non_numeric_price_in_a_file_names_ticker_and_date(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,SPY\n2024-01-02,470.1\n2024-01-03,oops\n2024-01-04,468.0\n")
    with pytest.raises(DataError, match="SPY on 2024-01-03 is not a number: 'oops'"):
        load_prices(path)


def test_unsupported_source_and_missing_file_are_rejected(tmp_path):
    with pytest.raises(DataError, match="neither 'bundled', 'yfinance' nor a .csv"):
        load_prices("yahoo")
    with pytest.raises(DataError, match="no such file"):
        load_prices(tmp_path / "absent.csv")


# --- validation ---------------------------------------------------------------------------


def test_duplicate_dates_are_listed():
    frame = frame_of({"SPY": [1.0, 2.0, 3.0]})
    frame.index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-03"], name="date")
    with pytest.raises(DataError, match="duplicate dates: 2024-01-03"):
        validate_prices(frame)


def test_unsorted_dates_say_where():
    frame = frame_of({"SPY": [1.0, 2.0, 3.0]})
    frame.index = pd.DatetimeIndex(["2024-01-02", "2024-01-05", "2024-01-04"], name="date")
    with pytest.raises(DataError, match="2024-01-04 comes right after 2024-01-05"):
        validate_prices(frame)


def test_non_positive_prices_name_ticker_and_dates():
    frame = frame_of({"SPY": [1.0, 2.0, 3.0], "QQQ": [1.0, 0.0, -1.0]})
    message = r"QQQ has 2 non-positive prices: 2024-01-02 \(0.0\), 2024-01-03 \(-1.0\)"
    with pytest.raises(DataError, match=message):
        validate_prices(frame)


def test_infinite_prices_name_ticker_and_dates():
    frame = frame_of({"SPY": [1.0, np.inf, 3.0]})
    with pytest.raises(DataError, match=r"SPY has 1 infinite price: 2024-01-02 \(inf\)"):
        validate_prices(frame)


def test_long_gap_error_names_ticker_dates_and_the_fill_gaps_to_pass():
    frame = frame_of({"SPY": [1.0, 2.0, 3.0, 4.0, 5.0], "QQQ": [1.0, np.nan, np.nan, np.nan, 2.0]})
    message = "QQQ has 3 missing prices in a row, 2024-01-02 to 2024-01-04; pass fill_gaps=3"
    with pytest.raises(DataError, match=message):
        validate_prices(frame, fill_gaps=2)


def test_gap_longer_than_max_nan_run_asks_to_clean_the_data():
    frame = frame_of({"SPY": [1.0, np.nan, np.nan, np.nan, 2.0]})
    with pytest.raises(DataError, match="more than max_nan_run=2; clean the data"):
        validate_prices(frame, max_nan_run=2)
    with pytest.raises(DataError, match="fill_gaps=3 exceeds max_nan_run=2"):
        validate_prices(frame, fill_gaps=3, max_nan_run=2)


def test_short_gap_is_filled_only_when_fill_gaps_allows_and_counted():
    frame = frame_of({"SPY": [1.0, np.nan, 3.0, np.nan, np.nan, 6.0], "QQQ": [1.0] * 6})
    with pytest.raises(DataError, match="pass fill_gaps=2"):
        validate_prices(frame)
    with pytest.warns(UserWarning, match=r"forward-filled 3 missing prices \(SPY: 3\)"):
        filled = validate_prices(frame, fill_gaps=2)
    assert filled["SPY"].tolist() == [1.0, 1.0, 3.0, 3.0, 3.0, 6.0]


def test_all_nan_column_is_named():
    frame = frame_of({"SPY": [1.0, 2.0], "QQQ": [np.nan, np.nan]})
    with pytest.raises(DataError, match=r"no prices at all for QQQ \(column empty or all NaN\)"):
        validate_prices(frame)


def test_too_few_rows_say_how_many():
    with pytest.raises(DataError, match=r"only 1 row \(2020-01-02 to 2020-01-02\).*min_rows=2"):
        load_prices(start="2020-01-02", end="2020-01-02")
    with pytest.raises(DataError, match=r"only 3 rows \(2024-01-01 to 2024-01-03\).*min_rows=10"):
        validate_prices(frame_of({"SPY": [1.0, 2.0, 3.0]}), min_rows=10)


def test_rows_before_a_later_listing_are_dropped_with_the_kept_range():
    frame = frame_of({"OLD": [1.0, 2.0, 3.0, 4.0], "NEW": [np.nan, np.nan, 5.0, 6.0]})
    with pytest.warns(UserWarning, match="kept 2024-01-03 to 2024-01-04.*NEW start on 2024-01-03"):
        kept = validate_prices(frame)
    assert kept.index.tolist() == list(pd.to_datetime(["2024-01-03", "2024-01-04"]))


# --- Yahoo Finance ------------------------------------------------------------------------


def test_yahoo_single_ticker_flat_columns(yahoo, tmp_path):
    fake = yahoo(flat=True)
    prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    expected = expected_closes("SPY", "2024-01-02", "2024-01-31")
    pd.testing.assert_series_equal(prices["SPY"], expected, check_index_type=False)
    call = fake.calls[0]
    assert (call["start"], call["end"]) == ("2024-01-02", "2024-02-01")  # Yahoo's end: exclusive
    assert call["auto_adjust"] is True and call["progress"] is False


def test_yahoo_tickers_share_one_call_and_keep_the_requested_order(yahoo, tmp_path):
    fake = yahoo()
    prices = load_prices("yfinance", ["qqq", "SPY", "IWM"], "2024-01-02", "2024-01-12",
                         cache_dir=tmp_path)
    assert list(prices.columns) == ["QQQ", "SPY", "IWM"]
    assert len(fake.calls) == 1 and fake.calls[0]["tickers"] == ["QQQ", "SPY", "IWM"]
    assert prices.loc["2024-01-05", "IWM"] == close_on("IWM", pd.Timestamp("2024-01-05"))


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_yahoo_tz_aware_index_keeps_the_exchange_day(yahoo, tmp_path, zone):
    yahoo(tz=zone)
    prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-01-05", cache_dir=tmp_path)
    assert prices.index.tz is None
    assert prices.index.tolist() == list(pd.bdate_range("2024-01-02", "2024-01-05"))


def test_yahoo_missing_day_is_a_gap_that_fill_gaps_can_fill(yahoo, tmp_path):
    yahoo(missing={"QQQ": ["2024-01-10"]})
    window = ("yfinance", ["SPY", "QQQ"], "2024-01-02", "2024-01-31")
    with pytest.raises(DataError, match="QQQ has 1 missing price in a row, 2024-01-10 to"):
        load_prices(*window, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"forward-filled 1 missing price \(QQQ: 1\)"):
        prices = load_prices(*window, cache_dir=tmp_path, fill_gaps=1)
    assert prices.loc["2024-01-10", "QQQ"] == prices.loc["2024-01-09", "QQQ"]


def test_yahoo_unknown_ticker_is_a_data_error_without_retries(yahoo, tmp_path, sleeps):
    fake = yahoo(unknown={"NOPE"})
    with pytest.raises(DataError, match=r"no data for ticker NOPE from Yahoo Finance .*delisted"):
        load_prices("yfinance", "NOPE", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    assert len(fake.calls) == 1 and sleeps == []


def test_yahoo_rate_limit_twice_then_success_backs_off_exponentially(yahoo, tmp_path, sleeps):
    fake = yahoo()
    fake.failures, fake.error = 2, YFRateLimitError()
    prices = download_prices("SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path, backoff=0.5)
    assert len(prices) == 22 and len(fake.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_yahoo_rate_limit_swallowed_into_its_log_is_retried(yahoo, tmp_path, sleeps):
    fake = yahoo()
    fake.logged_failures = 1
    prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    assert len(prices) == 22 and len(fake.calls) == 2 and sleeps == [1.0]


def test_yahoo_unreachable_without_cache_raises_download_error(yahoo, tmp_path, sleeps):
    fake = yahoo()
    fake.failures, fake.error = 99, ConnectionError("Connection reset by peer")
    message = r"no cache covers SPY from 2024-01-02 to 2024-01-31 \(checked .*yfinance\)"
    with pytest.raises(DownloadError, match=message) as caught:
        load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    assert str(tmp_path) in str(caught.value) and "after 5 attempts" in str(caught.value)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    # the way on offline: the bundled data (what it holds) or a file
    assert "take source 'bundled'" in str(caught.value) and "JPM" in str(caught.value)
    assert "CSV or parquet file" in str(caught.value)


@pytest.mark.parametrize("raised", [True, False], ids=["raised", "logged"])
def test_yahoo_dns_failure_fails_fast_without_retries(yahoo, tmp_path, sleeps, raised):
    fake = yahoo()
    dns = "Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com"
    if raised:
        fake.failures, fake.error = 99, ConnectionError(dns)
    else:
        fake.logged_failures, fake.failure_log = 99, dns
    with pytest.raises(DownloadError, match="not retried"):
        load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    assert len(fake.calls) == 1 and sleeps == []


def test_yahoo_retries_and_timeout_reach_yfinance(yahoo, tmp_path, sleeps):
    fake = yahoo()
    fake.failures, fake.error = 99, ConnectionError("Connection reset by peer")
    with pytest.raises(DownloadError, match="after 2 attempts"):
        load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path,
                    retries=1, timeout=3.5)
    assert len(fake.calls) == 2 and {call["timeout"] for call in fake.calls} == {3.5}
    with pytest.raises(DataError, match="timeout=0"):
        download_prices("SPY", "2024-01-02", cache_dir=tmp_path, timeout=0)


def test_cli_download_is_quiet_and_one_line_unless_verbose(yahoo, tmp_path, sleeps, capfd,
                                                            monkeypatch):
    fake = yahoo(unknown={"NOPE"})

    def noisy(*args, **kwargs):
        print("1 Failed download:")
        warnings.warn("pandas FutureWarning from inside yfinance", FutureWarning, stacklevel=1)
        return fake(*args, **kwargs)

    monkeypatch.setattr(yfinance, "download", noisy)
    args = ["download", "--tickers", "NOPE", "--start", "2024-01-02", "--end", "2024-01-31",
            "--cache-dir", str(tmp_path), "--retries", "0", "--timeout", "2"]
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 2 and quiet.output.count("\n") == 1, quiet.output
    assert "no data for ticker NOPE" in quiet.output and "Failed download" not in quiet.output
    assert "Failed download" not in capfd.readouterr().err
    verbose = CliRunner().invoke(app, ["-v", *args])
    assert verbose.exit_code == 2
    assert "Failed download" in verbose.output + capfd.readouterr().err


def test_a_hundredfold_price_jump_is_rejected_naming_ticker_and_day():
    prices = frame_of({"X": [100.0, 101.0, 1e12, 102.0]})
    with pytest.raises(DataError, match=r"X jumps from 101 to 1e\+12 on 2024-01-03 .*typo"):
        validate_prices(prices)
    assert len(validate_prices(frame_of({"X": [100.0, 150.0, 90.0, 95.0]}))) == 4


def test_yahoo_unreachable_falls_back_to_a_cache_covering_the_settled_days(
    yahoo, tmp_path, monkeypatch
):
    monkeypatch.setattr(yahoo_source, "_last_settled_day", lambda: pd.Timestamp("2024-01-31"))
    fake = yahoo()
    load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    fake.failures, fake.error = 99, YFRateLimitError()
    with pytest.warns(UserWarning, match="using cached prices for SPY up to 2024-01-31"):
        prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-02-02", cache_dir=tmp_path)
    assert prices.index[-1] == pd.Timestamp("2024-01-31") and len(prices) == 22


def test_yahoo_cache_is_reused_then_extended_by_the_missing_tail_and_head(yahoo, tmp_path):
    fake = yahoo()
    first = load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    again = load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    assert len(fake.calls) == 1 and (tmp_path / "yfinance" / "SPY_1d.parquet").is_file()

    longer = load_prices("yfinance", "SPY", "2024-01-10", "2024-02-15", cache_dir=tmp_path)
    tail = fake.calls[1]
    assert (tail["start"], tail["end"]) == ("2024-01-31", "2024-02-16")  # overlaps one bar
    assert longer.index[0] == pd.Timestamp("2024-01-10")
    assert longer.index[-1] == pd.Timestamp("2024-02-15")

    earlier = load_prices("yfinance", "SPY", "2023-12-01", "2024-02-15", cache_dir=tmp_path)
    head = fake.calls[2]
    assert (head["start"], head["end"]) == ("2023-12-01", "2024-01-03")
    expected = expected_closes("SPY", "2023-12-01", "2024-02-15")
    pd.testing.assert_series_equal(earlier["SPY"], expected, check_index_type=False)
    assert len(fake.calls) == 3


def test_yahoo_cache_extension_rescales_old_closes_after_a_split(yahoo, tmp_path):
    fake = yahoo()
    load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    fake.scale = 0.5  # a 2:1 split: Yahoo halves the whole adjusted history
    prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-02-15", cache_dir=tmp_path)
    expected = 0.5 * expected_closes("SPY", "2024-01-02", "2024-02-15")
    np.testing.assert_allclose(prices["SPY"].to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_yahoo_cache_goes_to_the_env_dir_with_a_safe_file_name(yahoo, tmp_path):
    yahoo()
    load_prices("yfinance", "^GSPC", "2024-01-02", "2024-01-05")
    assert (tmp_path / "env-cache" / "yfinance" / "_GSPC_1d.parquet").is_file()


def test_failed_cache_write_keeps_the_old_file_and_leaves_no_temp(yahoo, tmp_path, monkeypatch):
    yahoo()
    load_prices("yfinance", "SPY", "2024-01-02", "2024-01-31", cache_dir=tmp_path)
    path = tmp_path / "yfinance" / "SPY_1d.parquet"
    before = path.read_bytes()

    def write_half_then_fail(frame, target, *args, **kwargs):
        Path(target).write_bytes(before[: len(before) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", write_half_then_fail)
    with pytest.warns(UserWarning, match="could not update the price cache .*No space left"):
        prices = load_prices("yfinance", "SPY", "2024-01-02", "2024-02-15", cache_dir=tmp_path)
    assert prices.index[-1] == pd.Timestamp("2024-02-15")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["SPY_1d.parquet"]
