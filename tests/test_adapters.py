import types

import numpy as np
import pandas as pd
import pytest

import synthfin as sf
from synthfin.backtest.adapters import (
    BacktestingStrategy,
    _quiet_backtesting,
    signal_strategy,
    vectorbt_defaults,
)
from synthfin.backtest.harness import moving_average_crossover, strategy_returns
from synthfin.errors import DataError

backtesting = pytest.importorskip(
    "backtesting", reason="backtesting.py is not installed (pip install 'synthfin[backtest]')")
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402
from backtesting.test import SMA  # noqa: E402


class SmaCross(Strategy):
    """backtesting.py's README example."""

    n1, n2 = 10, 20

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.n1)
        self.sma2 = self.I(SMA, self.data.Close, self.n2)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


class BuyAndHold(Strategy):
    def init(self):
        pass

    def next(self):
        if not self.position:
            self.buy()


@pytest.fixture(scope="module")
def synth(sp500_prices):
    return sf.Synthesizer("garch", window_len=32).fit(sp500_prices.loc["2010":])


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")  # backtesting 0.6.6
def test_backtesting_runs_on_frames_with_no_glue(synth):
    scen = synth.sample(3, 120, regime="stressed", seed=0, start_price=100.0)
    for frame in scen.frames(ohlcv=True):
        stats = Backtest(frame, SmaCross).run()
        assert stats["# Trades"] > 0
        assert stats["Start"] == scen.start_date and stats["End"] == scen.dates[-1]


def test_adapter_equity_of_buy_and_hold_tracks_the_closes(synth):
    """Filled at the first bar's next open, the position then earns the close-to-close returns
    (cash left over from whole units is below 0.01 % of equity)."""
    scen = synth.sample(4, 60, seed=1)
    returns = BacktestingStrategy(BuyAndHold).scenario_returns(scen)
    assert returns.shape == (4, 60)
    np.testing.assert_allclose(returns[:, 2:], np.expm1(scen.returns[:, 2:, 0]), rtol=2e-3,
                               atol=1e-6)
    assert (returns[:, 0] == 0).all()  # the order is placed at bar 1, filled at bar 2's open


def test_stress_test_takes_a_backtesting_strategy_class(synth):
    scenarios = {"plain": synth.sample(20, 64, seed=0),
                 "crash": synth.crash(20, 64, shock=-0.1, shock_day=30, seed=0)}
    report = sf.stress_test(SmaCross, scenarios, synth.data_.history())
    assert report.strategy == "SmaCross"
    assert len(report.real) == len(synth.data_.history()) // 64
    table = report.table()
    assert table["real_percentile"].between(0, 100).all()
    assert table.loc[("crash", "max_drawdown"), "median"] > 0


def test_signal_functions_match_the_weight_strategy(synth):
    def ma_signals(close: pd.DataFrame):
        above = close.rolling(5).mean() > close.rolling(20).mean()
        return above, ~above

    scen = synth.sample(8, 64, seed=2)
    via_signals = signal_strategy(ma_signals).scenario_returns(scen)
    via_weights = strategy_returns(moving_average_crossover(5, 20), scen.prices(),
                                   scen.price_dates, scen.assets)
    np.testing.assert_allclose(via_signals, via_weights)
    report = sf.stress_test(signal_strategy(ma_signals), {"plain": scen}, synth.data_.history())
    assert report.strategy == "ma_signals"


def test_signal_state_machine_holds_between_entry_and_exit(synth):
    scen = synth.sample(1, 6, seed=0)
    entries = np.array([0, 1, 0, 1, 1, 0, 0], bool)[:, None]
    exits = np.array([0, 0, 0, 1, 0, 1, 0], bool)[:, None]
    weights = signal_strategy(lambda close: (entries, exits)).weights(scen)
    np.testing.assert_array_equal(weights[0, :, 0], [0, 1, 1, 1, 1, 0, 0])
    with pytest.raises(DataError, match="shape"):
        signal_strategy(lambda close: (entries[:3], exits)).weights(scen)


def test_backtesting_needs_one_asset():
    prices = sf.load_prices("bundled", ["JPM", "XOM"], start="2015-01-01")
    scen = sf.Synthesizer("gaussian", window_len=16).fit(prices).sample(2, 20, seed=0)
    with pytest.raises(DataError, match="one asset"):
        BacktestingStrategy(SmaCross).scenario_returns(scen)
    with pytest.raises(DataError, match="not a backtesting.py Strategy"):
        BacktestingStrategy(dict)


def test_signals_match_vectorbt_when_installed(synth):
    vbt = pytest.importorskip("vectorbt", reason="vectorbt is not installed (heavy; optional "
                              "in synthfin[backtest])")
    scen = synth.sample(5, 64, seed=3)

    def ma_signals(close):
        fast, slow = close.rolling(5).mean(), close.rolling(20).mean()
        return fast > slow, fast < slow

    close = scen.to_wide()
    entries, exits = ma_signals(close)
    vectorbt_defaults()  # no freq= needed after it
    portfolio = vbt.Portfolio.from_signals(close, entries, exits)
    expected = portfolio.returns().to_numpy()[1:].T
    np.testing.assert_allclose(signal_strategy(ma_signals).scenario_returns(scen), expected,
                               atol=1e-12)


def test_vectorbt_defaults_set_a_trading_day_frequency_and_year():
    settings = {"array_wrapper": {"freq": None, "silence_warnings": False},
                "returns": {"year_freq": "365 days"}}
    vectorbt_defaults(types.SimpleNamespace(settings=settings))
    assert settings["array_wrapper"] == {"freq": "1D", "silence_warnings": False}
    assert settings["returns"]["year_freq"] == "252 days"  # trading days, not calendar days


def test_one_asset_of_a_multi_asset_set_runs_in_a_bare_backtest():
    prices = sf.load_prices("bundled", ["JPM", "XOM"], start="2015-01-01")
    scen = sf.Synthesizer("gaussian", window_len=16).fit(prices).sample(2, 40, seed=0)
    frame = next(scen.frames(asset="XOM"))
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    np.testing.assert_allclose(frame["Close"].to_numpy(), scen.prices()[0, :, 1])
    with _quiet_backtesting():
        stats = Backtest(frame, SmaCross, cash=10_000 * frame["Close"].iloc[0]).run()
    assert len(stats["_equity_curve"]) == 41
    with pytest.raises(DataError, match=r"frames\(asset='JPM'\)"):
        BacktestingStrategy(SmaCross).scenario_returns(scen)
    with pytest.raises(DataError, match="asset='SPY' is not in"):
        next(scen.frames(asset="SPY"))
