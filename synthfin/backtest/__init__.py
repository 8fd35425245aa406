"""What paths are used for: stress tests of trading strategies (the harness, P&L and its metrics,
adapters for backtesting.py and vectorbt), VaR / ES backtests and Monte-Carlo forecasts."""
