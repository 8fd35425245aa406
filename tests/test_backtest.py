import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import synthfin as sf
from synthfin.backtest.harness import (
    load_strategy,
    moving_average_crossover,
    performance,
    strategy_returns,
    stress_test,
    volatility_targeting,
)
from synthfin.cli import app
from synthfin.errors import DataError, SynthfinError


def test_performance_matches_a_hand_computed_path():
    returns = np.array([[0.1, -0.2, 0.05, 0.0]])
    row = performance(returns).iloc[0]
    equity = np.array([1.1, 0.88, 0.924, 0.924])
    assert row["total_return"] == pytest.approx(equity[-1] - 1)
    assert row["max_drawdown"] == pytest.approx(1 - 0.88 / 1.1)
    assert row["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(252))
    losses = -returns[0]
    var = np.quantile(losses, 0.95)
    assert row["var_95"] == pytest.approx(var)
    assert row["es_95"] == pytest.approx(losses[losses >= var].mean())
    assert row["underwater_share"] == pytest.approx(0.75)
    assert row["longest_underwater_days"] == 3


def test_pnl_uses_yesterdays_weights_and_both_strategy_styles_agree():
    prices = np.array([[[100.0], [110.0], [99.0], [104.5]]])
    dates = pd.bdate_range("2024-01-01", periods=4)

    def half_long(frame: pd.DataFrame) -> pd.DataFrame:
        return frame * 0 + 0.5

    pnl = strategy_returns(half_long, prices, dates, ["X"])
    np.testing.assert_allclose(pnl, [[0.05, -0.05, 0.5 * (104.5 / 99 - 1)]])

    def vectorized(p: np.ndarray) -> np.ndarray:
        return np.full_like(p, 0.5)

    vectorized.vectorized = True
    np.testing.assert_allclose(strategy_returns(vectorized, prices, dates, ["X"]), pnl)


def test_example_strategies_match_pandas(rng):
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(2, 300, 1)), axis=1))
    weights = moving_average_crossover(5, 20)(prices)
    frame = pd.Series(prices[1, :, 0])
    expected = (frame.rolling(5).mean() > frame.rolling(20).mean()).astype(float).to_numpy()
    np.testing.assert_array_equal(weights[1, 19:, 0], expected[19:])
    assert (weights[:, :19] == 0).all()
    vol_weights = volatility_targeting(0.1, 20, max_leverage=5)(prices)
    log_returns = pd.Series(np.diff(np.log(prices[0, :, 0])))
    realized = np.sqrt((log_returns**2).rolling(20).mean() * 252).to_numpy()
    np.testing.assert_allclose(vol_weights[0, 20:, 0], np.minimum(0.1 / realized[19:], 5))


@pytest.fixture(scope="module")
def synth(sp500_prices):
    return sf.Synthesizer("garch", gjr=True).fit(sp500_prices)


def test_stress_test_puts_real_history_in_the_synthetic_distribution(synth):
    scenarios = {r: synth.sample(300, length=252, regime=r, seed=0) for r in ("calm", "stressed")}
    history = synth.data_.unscale(synth.data_.train.returns)
    report = stress_test(volatility_targeting(), scenarios, history)
    assert len(report.real) == len(history) // 252
    table = report.table()
    assert set(table.index.get_level_values(0)) == {"calm", "stressed"}
    assert table["real_percentile"].between(0, 100).all()
    calm_vol = scenarios["calm"].returns[:, :21].std()
    stressed_vol = scenarios["stressed"].returns[:, :21].std()
    assert stressed_vol > 1.5 * calm_vol


def test_crash_injection_puts_the_shock_and_raises_volatility(synth):
    crash = synth.crash(1000, 40, shock=-0.08, shock_day=3, seed=0)
    np.testing.assert_array_equal(crash.returns[:, 3], -0.08)
    base = synth.sample(1000, length=40, seed=0)
    assert crash.returns[:, 4:14].std() > 1.2 * base.returns[:, 4:14].std()
    with pytest.raises(sf.ModelError, match="shock_day"):
        synth.crash(10, 5, shock_day=5)


def test_bad_strategies_are_clear_errors():
    with pytest.raises(SynthfinError, match="module:function"):
        load_strategy("nocolon")
    with pytest.raises(SynthfinError, match="cannot load strategy"):
        load_strategy("synthfin.backtest.harness:nope")
    assert load_strategy("synthfin.backtest.harness:moving_average_crossover").vectorized
    with pytest.raises(DataError, match="weights of shape"):
        strategy_returns(lambda frame: frame.iloc[:2], np.ones((1, 4, 1)),
                         pd.bdate_range("2024-01-01", periods=4), ["X"])


def test_cli_stress_writes_the_report(synth, tmp_path):
    synth.save(tmp_path / "synth")
    result = CliRunner().invoke(app, [
        "stress", "--model-dir", str(tmp_path / "synth"), "--strategy",
        "synthfin.backtest.harness:volatility_targeting", "--n", "100", "--length", "64",
        "--regime", "stressed", "--crash", "-0.1", "--out", str(tmp_path / "stress")])
    assert result.exit_code == 0, result.output
    for file in ("stress.md", "stress.json", "stress.png"):
        assert (tmp_path / "stress" / file).is_file()
    assert "crash -10% day 0" in result.output
