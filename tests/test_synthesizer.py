import numpy as np
import pandas as pd
import pytest

import synthfin as sf
from synthfin.errors import DataError, ModelError


@pytest.fixture(scope="module")
def synth(sp500_prices):
    return sf.Synthesizer("garch", window_len=32, gjr=True).fit(sp500_prices.loc["2005":])


def test_scenarios_carry_business_dates_assets_and_prices(synth, sp500_prices):
    scenarios = synth.sample(50, length=100, regime="stressed", seed=0)
    assert scenarios.returns.shape == (50, 100, 1) and scenarios.assets == ["SP500"]
    assert scenarios.dates[0] > sp500_prices.index[-1]
    assert scenarios.dates.is_unique and scenarios.dates.is_monotonic_increasing
    assert (scenarios.dates.day_of_week < 5).all()
    prices = scenarios.prices()
    assert prices.shape == (50, 101, 1)
    np.testing.assert_allclose(prices[:, 0, 0], sp500_prices["SP500"].iloc[-1])
    np.testing.assert_allclose(np.log(prices[:, 1:] / prices[:, :-1]), scenarios.returns)
    frame = scenarios.to_frame()
    assert list(frame.columns) == ["path", "date", "asset", "return", "price"]
    assert len(frame) == 5000 and frame["date"].nunique() == 100


def test_parquet_and_save_load_round_trip(synth, tmp_path):
    path = synth.sample(5, seed=1).to_parquet(tmp_path / "s.parquet")
    assert len(pd.read_parquet(path)) == 5 * 32
    synth.save(tmp_path / "synth")
    loaded = sf.Synthesizer.load(tmp_path / "synth")
    a, b = synth.sample(8, seed=3, regime="calm"), loaded.sample(8, seed=3, regime="calm")
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.dates.equals(b.dates)
    np.testing.assert_array_equal(loaded.real_windows, synth.real_windows)


def test_long_format_input_gives_the_same_fit(sp500_prices):
    wide = sp500_prices.loc["2010":]
    long = wide.reset_index().melt(id_vars="date", var_name="ticker", value_name="value")
    a = sf.Synthesizer("gaussian", window_len=16).fit(wide).sample(4, seed=0)
    b = sf.Synthesizer("gaussian", window_len=16).fit(long).sample(4, seed=0)
    np.testing.assert_array_equal(a.returns, b.returns)


def test_errors_are_specific(synth, sp500_prices):
    with pytest.raises(ModelError, match="unknown model"):
        sf.Synthesizer("nope")
    with pytest.raises(ModelError, match="not fitted"):
        sf.Synthesizer("garch").sample(3)
    with pytest.raises(DataError, match="unknown regime"):
        synth.sample(3, regime="panic")
    with pytest.raises(DataError, match="DataFrame"):
        sf.Synthesizer("garch").fit(np.ones(10))


def test_evaluate_reports_against_both_references(synth):
    result = synth.evaluate(500, seed=0)
    assert list(result.summary().index) == [("in_sample", "garch"), ("out_of_sample", "garch")]
    assert result.real.shape[1] == 32


def test_evaluate_before_fit_is_a_model_error():
    with pytest.raises(ModelError, match="not fitted"):
        sf.Synthesizer("garch").evaluate(10)
