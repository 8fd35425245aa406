"""Trading days for scenario dates: an exchange's sessions (``exchange_calendars``) or Mon-Fri.

Dates come back without a frequency (``freq=None``): exchange sessions are irregular, and
vectorbt rejects pandas' ``"B"`` and ``"C"`` offsets.
"""

from __future__ import annotations

import functools
import warnings

import pandas as pd

from synthfin.errors import DataError

DEFAULT_CALENDAR = "XNYS"
BUSINESS_DAYS = "business"


def parse_day(day: pd.Timestamp | str, what: str = "date") -> pd.Timestamp:
    """``day`` as a midnight Timestamp; anything that is not a date is a :class:`DataError`
    naming ``what``."""
    try:
        parsed = pd.Timestamp(day)
    except (ValueError, TypeError, OverflowError):
        parsed = pd.NaT
    if parsed is pd.NaT:
        raise DataError(f"{what} {day!r} is not a date; write it as YYYY-MM-DD")
    return parsed.normalize()


def trading_days_after(last_day: pd.Timestamp | str, length: int,
                       calendar: str = DEFAULT_CALENDAR) -> pd.DatetimeIndex:
    """The ``length`` trading days strictly after ``last_day``.

    Parameters
    ----------
    last_day : Timestamp or str
    length : int
    calendar : str
        An ``exchange_calendars`` name or alias (``"XNYS"`` or ``"NYSE"``, ``"XLON"``,
        ``"XTKS"``...), or ``"business"`` for every Monday to Friday.

    Returns
    -------
    DatetimeIndex named ``date``, sorted, unique, ``freq=None``.
    """
    last_day = parse_day(last_day, "the start date")
    if calendar == BUSINESS_DAYS:
        days = pd.bdate_range(last_day + pd.offsets.BDay(1), periods=length)
    else:
        span_days = length * 7 // 4 + 30  # every exchange trades more than 4 days in 7
        while True:
            sessions = _sessions(calendar, last_day.year, (last_day + pd.Timedelta(
                days=span_days)).year)
            days = sessions[sessions > last_day][:length]
            if len(days) == length:
                break
            span_days *= 2
    return pd.DatetimeIndex(days.to_numpy(), name="date")


def previous_trading_day(day: pd.Timestamp | str, calendar: str = DEFAULT_CALENDAR
                         ) -> pd.Timestamp:
    """The last trading day strictly before ``day`` on ``calendar``."""
    day = parse_day(day)
    if calendar == BUSINESS_DAYS:
        return day - pd.offsets.BDay(1)
    sessions = _sessions(calendar, day.year - 1, day.year)
    return sessions[sessions < day][-1]


@functools.lru_cache(maxsize=32)
def _sessions(calendar: str, first_year: int, last_year: int) -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    try:
        with warnings.catch_warnings():  # exchange_calendars 4.13 under pandas 3.1
            warnings.filterwarnings("ignore", message="Series.values returning")
            exchange = xcals.get_calendar(calendar, start=f"{first_year}-01-01",
                                          end=f"{last_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        raise DataError(f"unknown exchange calendar {calendar!r}: use an exchange_calendars "
                        f"name such as 'XNYS', 'XLON', 'XTKS' (exchange_calendars."
                        f"get_calendar_names() lists them) or {BUSINESS_DAYS!r}") from None
    except ValueError as error:  # a span outside the calendar's history
        raise DataError(f"calendar {calendar!r} cannot give {first_year}-{last_year}: "
                        f"{error}") from None
    return exchange.sessions
