import numpy as np
import pandas as pd
import pytest

import synthfin as sf
from synthfin.errors import DataError, ModelError
from synthfin.evaluation.scores import ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL


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
    assert list(result.summary().index) == [
        (reference, name) for reference in ("in_sample", "out_of_sample")
        for name in ("garch", ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL)]  # the anchors last
    assert result.real.shape[1] == 32


def test_evaluate_before_fit_is_a_model_error():
    with pytest.raises(ModelError, match="not fitted"):
        sf.Synthesizer("garch").evaluate(10)


@pytest.fixture(scope="module")
def jpm_ar():
    """The zero-shot autoregressive model on JPM: it continues histories, and fits in seconds."""
    prices = sf.load_prices("bundled", ["JPM"], start="2005-01-01")
    return sf.Synthesizer("ar", finetune=False, stationary_days=252).fit(prices)


def annual_vol(scenarios: sf.Scenarios, days: slice = slice(1, None)) -> float:
    return float(scenarios.returns[:, days].std() * np.sqrt(252))


def test_crash_starts_where_sample_starts_so_only_the_shock_differs(jpm_ar):
    for start in ("stationary", "today"):
        plain = jpm_ar.sample(300, length=126, seed=0, start=start)
        crash = jpm_ar.crash(300, 126, shock=-0.1, seed=0, start=start)
        np.testing.assert_array_equal(crash.returns[:, 0], -0.1)
        assert annual_vol(crash) > annual_vol(plain)  # the shock raises the vol after it
    # the default start is the same for both: the stationary one
    stationary = jpm_ar.sample(300, length=126, seed=0, start="stationary")
    np.testing.assert_array_equal(jpm_ar.sample(300, length=126, seed=0).returns,
                                  stationary.returns)
    today = jpm_ar.sample(300, length=126, seed=0, start="today")
    assert abs(annual_vol(today, slice(0, 5)) - annual_vol(stationary, slice(0, 5))) > 0.02


def test_start_today_is_refused_clearly_where_it_cannot_apply(jpm_ar, synth, sp500_prices):
    gaussian = sf.Synthesizer("gaussian", window_len=32).fit(sp500_prices.loc["2005":])
    with pytest.raises(ModelError, match=r"start='today' needs a model .*\(ar"):
        gaussian.sample(3, start="today")
    with pytest.raises(ModelError, match="needs a model"):
        gaussian.crash(3, 10, start="today")
    # GARCH filters the real history with its fitted parameters, so it continues today
    assert synth.sample(3, length=5, start="today", seed=0).returns.shape == (3, 5, 1)
    with pytest.raises(ModelError, match="drop regime='stressed'"):
        jpm_ar.sample(3, regime="stressed", start="today")
    with pytest.raises(ModelError, match="start must be one of"):
        jpm_ar.sample(3, start="yesterday")
    crash = synth.crash(50, 20, shock=-0.1, shock_day=2, seed=0)  # from stationary days
    assert crash.returns.shape == (50, 20, 1) and (crash.returns[:, 2] == -0.1).all()


def test_real_segments_are_dated_real_paths_ending_on_the_last_day(synth, sp500_prices,
                                                                   tmp_path):
    segments = synth.real_segments(252)
    real = sp500_prices.loc["2005":, "SP500"]
    assert len(segments) == (len(real) - 1) // 252
    last = segments[-1]
    assert last.dates[-1] == real.index[-1] and last.start_date == real.index[-253]
    np.testing.assert_allclose(last.prices()[0, :, 0], real.iloc[-253:])
    assert all(a.dates[-1] < b.dates[0] for a, b in zip(segments[:-1], segments[1:], strict=True))
    loaded = sf.Synthesizer.load(synth.save(tmp_path / "s")).real_segments(252)
    np.testing.assert_array_equal(loaded[0].returns, segments[0].returns)
    for length in (10**6, 0):
        with pytest.raises(DataError, match="length must be in"):
            synth.real_segments(length)


def test_sample_given_is_dated_on_the_path_and_continues_the_history_before_it():
    """A held-out month: fitted before March 2020, the S&P 500's real March path given."""
    prices = sf.load_prices("bundled", ["SP500", "KO"], start="2015-01-01", end="2020-03-31")
    synth = sf.Synthesizer("dcc", window_len=16, split=("2019-12-31", "2020-02-28")).fit(prices)
    march = np.log(prices["SP500"]).diff().loc["2020-03-01":]
    scenarios = synth.sample_given(march, 200, seed=0)
    assert list(scenarios.dates) == list(march.index) and scenarios.regime == "given"
    assert scenarios.start_date == pd.Timestamp("2020-02-28")
    np.testing.assert_array_equal(scenarios.returns[:, :, 0],
                                  np.broadcast_to(march.to_numpy(), (200, len(march))))
    np.testing.assert_allclose(scenarios.start_prices, prices.loc["2020-02-28"].to_numpy())
    assert np.median(scenarios.returns[:, :, 1].sum(axis=1)) < 0  # KO fell with the market
    with pytest.raises(ModelError, match="cannot draw assets given"):
        sf.Synthesizer("gaussian", window_len=16, split=("2019-12-31", "2020-02-28")).fit(
            prices).sample_given(march, 5)


def test_every_model_with_a_state_continues_a_history():
    from synthfin.models import continuing_models

    assert {"ar", "cvae", "timegan", "garch", "dcc", "fhs"} <= set(continuing_models())
    assert not {"gaussian", "bootstrap"} & set(continuing_models())
