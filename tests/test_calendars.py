import pandas as pd
import pytest

from synthfin.errors import DataError
from synthfin.scenarios.calendars import previous_trading_day, trading_days_after

NYSE_2023_HOLIDAYS = ["2023-01-02", "2023-01-16", "2023-02-20", "2023-04-07", "2023-05-29",
                      "2023-06-19", "2023-07-04", "2023-09-04", "2023-11-23", "2023-12-25"]


def test_nyse_days_skip_every_2023_holiday():
    days = trading_days_after("2022-12-30", 250)
    assert days[0] == pd.Timestamp("2023-01-03") and days[-1] == pd.Timestamp("2023-12-29")
    assert not days.isin(pd.to_datetime(NYSE_2023_HOLIDAYS)).any()
    assert days.freq is None and days.name == "date" and days.is_unique


def test_other_exchanges_and_business_days():
    london = trading_days_after("2023-04-28", 3, "XLON")
    assert pd.Timestamp("2023-05-01") not in london          # early May bank holiday
    assert pd.Timestamp("2023-05-01") in trading_days_after("2023-04-28", 3, "NYSE")
    business = trading_days_after("2023-07-03", 2, "business")
    assert list(business) == list(pd.to_datetime(["2023-07-04", "2023-07-05"]))
    assert business.freq is None


def test_long_horizons_and_previous_day():
    days = trading_days_after("2022-12-28", 2520)
    assert len(days) == 2520 and days.is_monotonic_increasing
    assert previous_trading_day("2023-07-05") == pd.Timestamp("2023-07-03")
    assert previous_trading_day("2023-07-05", "business") == pd.Timestamp("2023-07-04")


def test_unknown_calendar_is_a_clear_error():
    with pytest.raises(DataError, match="unknown exchange calendar 'MOON'"):
        trading_days_after("2023-01-01", 3, "MOON")
