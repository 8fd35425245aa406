"""Paths as a user holds them: :class:`~synthfin.scenarios.paths.Scenarios` (returns, prices,
dates, shocks), trading calendars, and OHLCV bars around sampled closes."""
