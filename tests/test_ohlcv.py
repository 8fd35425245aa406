import numpy as np
import pandas as pd
import pytest
from arch.data import sp500

from synthfin.errors import DataError
from synthfin.scenarios.ohlcv import (
    FIELDS,
    OHLCVModel,
    bar_facts,
    sp500_ohlcv_model,
    volatility_state,
)


@pytest.fixture(scope="module")
def model() -> OHLCVModel:
    return sp500_ohlcv_model()


def test_bars_are_ordered_positive_and_close_on_the_paths(model, rng):
    returns = rng.standard_t(3, size=(200, 60, 2)) * 0.01
    returns[:, 10] = -0.25          # a crash far beyond the fitted moves
    returns[:5] = 0.0               # flat paths
    bars = model.sample(returns, [100.0, 20.0], seed=0)
    o, h, low, c, v = np.moveaxis(bars, -1, 0)
    assert bars.shape == (200, 61, 2, 5) and np.isfinite(bars).all()
    assert (low <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    assert (low > 0).all() and (v > 0).all()
    np.testing.assert_allclose(c[:, 1:], [100.0, 20.0] * np.exp(np.cumsum(returns, axis=1)))
    np.testing.assert_allclose(c[:, 0], [[100.0, 20.0]] * 200)


def test_sampling_is_reproducible_by_seed(model, rng):
    returns = rng.normal(0, 0.01, size=(3, 30, 1))
    np.testing.assert_array_equal(model.sample(returns, 1.0, seed=4),
                                  model.sample(returns, 1.0, seed=4))
    assert not np.array_equal(model.sample(returns, 1.0, seed=4),
                              model.sample(returns, 1.0, seed=5))


def test_volatility_state_is_the_ewma_of_past_squares():
    returns = np.array([[0.01], [0.02], [-0.03], [0.0]])
    sigma2 = [np.mean(returns[:, 0] ** 2)]
    for r in returns[:-1, 0]:
        sigma2.append(0.94 * sigma2[-1] + 0.06 * r**2)
    np.testing.assert_allclose(volatility_state(returns)[:, 0], np.sqrt(sigma2))


def test_fit_recovers_the_parameters_of_bars_it_simulated(model):
    """Simulate bars on 2008-2016 real closes, refit: the gap share and the bridge variances
    come back within a few standard errors (about 0.003 for beta and 0.03 for each log
    variance with ~2,000 days)."""
    closes = sp500.load().loc["2007":"2016", "Close"].to_numpy()
    returns = np.diff(np.log(closes))[None, :, None]
    bars = model.sample(returns, closes[0], seed=0)[0, :, 0]
    frame = pd.DataFrame(bars, columns=FIELDS, index=pd.bdate_range("2007-01-01",
                                                                    periods=len(bars)))
    refit = OHLCVModel.fit(frame)
    assert refit.gap_beta == pytest.approx(model.gap_beta, abs=0.015)
    assert refit.excursion_up == pytest.approx(model.excursion_up, abs=0.15)
    assert refit.excursion_down == pytest.approx(model.excursion_down, abs=0.15)
    assert refit.excursion_slope == pytest.approx(model.excursion_slope, abs=0.1)


def test_the_default_model_gives_real_like_facts_on_held_out_closes(model):
    """On real 2017-2018 closes the layer's bars have a positive range/|r|, gap/r and volume/|r|
    relation and persistent volume, as the real bars of those years do: each correlation is
    above three standard errors of a zero correlation (3 / sqrt(days))."""
    real = sp500.load().loc["2017":"2018", list(FIELDS)].to_numpy()[None]
    returns = np.diff(np.log(real[:, :, 3]), axis=1)[:, :, None]
    synthetic = bar_facts(model.sample(returns, real[0, 0, 3], seed=0)[:, :, 0])
    facts = bar_facts(real)
    zero_band = 3 / np.sqrt(returns.shape[1])
    for name in ("range_abs_return_corr", "volume_abs_return_corr", "volume_acf_1",
                 "gap_return_corr"):
        assert facts[name] > zero_band and synthetic[name] > zero_band, name
    assert synthetic["parkinson_ratio"] == pytest.approx(facts["parkinson_ratio"], abs=0.1)


def test_save_load_round_trips_as_json(model, tmp_path):
    path = model.save(tmp_path / "ohlcv.json")
    assert OHLCVModel.load(path) == model
    (tmp_path / "bad.json").write_text("{\"gap_beta\": 1}")
    with pytest.raises(DataError, match="bad.json is damaged"):
        OHLCVModel.load(tmp_path / "bad.json")


def test_bad_bars_and_levels_are_clear_errors(model):
    frame = sp500.load().loc["2010":"2012"]
    with pytest.raises(DataError, match="lack column"):
        OHLCVModel.fit(frame.drop(columns="Volume"))
    broken = frame.copy()
    broken.iloc[5, broken.columns.get_loc("High")] = broken["Low"].iloc[5] * 0.5
    with pytest.raises(DataError, match="1 bar"):
        OHLCVModel.fit(broken)
    with pytest.raises(DataError, match="at least"):
        OHLCVModel.fit(frame.iloc[:100])
    with pytest.raises(DataError, match="volume_level"):
        model.sample(np.zeros((1, 5, 1)), 1.0, volume_level=-3)
