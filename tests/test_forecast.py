"""Forecast scores separate a calibrated forecaster from a miscalibrated one, and the peers
read nothing after the forecast day."""

import numpy as np
import pytest
from typer.testing import CliRunner

from synthfin.backtest.forecast import (
    PATH_DAYS,
    PEERS,
    calibrated_passes,
    calibration_passes,
    compare_log_scores,
    crps_ensemble,
    cumulative_returns,
    forecast_days,
    horizon_scores,
    portfolio_returns,
    run_portfolio_forecasts,
)
from synthfin.cli import app

DAYS, DRAWS = 2000, 400


def test_cumulative_returns_sum_the_first_h_days():
    paths = np.arange(2 * 60, dtype=float).reshape(2, 60)
    np.testing.assert_array_equal(cumulative_returns(paths, (1, 5))[1],
                                  [60.0, sum(range(60, 65))])


def test_crps_of_an_ensemble_matches_the_gaussian_closed_form(rng):
    """E CRPS(N(0,1), y) over y ~ N(0,1) is 1 / sqrt(pi); per-day sd about 0.3, so 4 SE of the
    mean of 2,000 days is 0.03 (the ensemble's own bias, ~E|X-X'| / 2m, is 0.0014)."""
    observed = rng.standard_normal(DAYS)
    scores = crps_ensemble(observed, rng.standard_normal((DAYS, DRAWS)))
    assert scores.mean() == pytest.approx(1 / np.sqrt(np.pi), abs=4 * scores.std() / np.sqrt(DAYS))


def test_a_forecaster_drawing_from_the_true_law_is_calibrated(rng):
    """Coverage within 4 binomial SE of nominal (plus the draws' quantile error, ~0.01 at the
    90 % interval with 400 draws), Kupiec not rejected at 0.1 %, a flat PIT histogram."""
    row = horizon_scores(rng.standard_normal((DAYS, DRAWS)), rng.standard_normal(DAYS))
    for level in (0.5, 0.9, 0.98):
        tolerance = 4 * np.sqrt(level * (1 - level) / DAYS) + 0.01
        assert row[f"cover {level:.0%}"] == pytest.approx(level, abs=tolerance)
    assert row["kupiec p 5%"] > 0.001 and row["kupiec p 1%"] > 0.001
    assert row["pit chi2 p"] > 0.001


def test_a_too_narrow_forecaster_is_rejected(rng):
    """Draws with half the true sd: the 90 % interval covers P(|Z| < 0.82) = 0.59, the 1 % VaR
    is breached about 10 % of days, ES is underestimated, the PIT is U-shaped."""
    row = horizon_scores(0.5 * rng.standard_normal((DAYS, DRAWS)), rng.standard_normal(DAYS))
    assert row["cover 90%"] == pytest.approx(0.59, abs=0.05)
    assert row["breach 1%"] > 0.05 and row["kupiec p 1%"] < 1e-6
    assert row["AS z2 p 1%"] < 0.01 and row["pit chi2 p"] < 1e-6
    assert row["pit_0"] > 3 * row["pit_5"]


def test_a_calibrated_forecaster_passes_the_check_as_often_as_the_multinomial_says():
    """Forecasts no closer than their horizon have iid uniform PITs: the pass probability with
    52 of them (the 21-series run: 13 a year over four years) is a sum over the multinomial of
    (1 % breaches, other misses of the 90 % interval, hits); 1,000 simulated test sets agree
    within 4 binomial SE. It is near one half: a perfect model fails the check on about half of
    such series. Overlapping windows (h = 60 every 5 days) pass less often than separate ones."""
    from scipy import stats

    from synthfin.backtest.risk import kupiec_test

    days = 52
    exact = 0.0
    for breaches in range(days + 1):
        kupiec = kupiec_test(np.arange(days) < breaches, 0.99)[1]
        for hits in range(days - breaches + 1):
            if calibration_passes(hits / days, kupiec):
                exact += stats.multinomial.pmf([breaches, days - breaches - hits, hits], days,
                                               [0.01, 0.09, 0.9])
    simulated = calibrated_passes(days, 5, 20, reps=1000).mean()
    assert 0.35 < exact < 0.65
    assert abs(simulated - exact) < 4 * np.sqrt(exact * (1 - exact) / 1000)
    apart, overlapping = (calibrated_passes(150, h, 5, reps=1000).mean() for h in (5, 60))
    assert overlapping < apart - 4 * np.sqrt(0.25 / 1000) * np.sqrt(2)


def test_an_overflowed_simulation_is_scored_as_a_loss_and_counted(rng):
    """An explosive peer (EGARCH's exp overflows to inf, then NaN) is scored, not a crash:
    its broken draws count as a total loss and their share is reported."""
    draws = rng.standard_normal((200, 100))
    draws[:20, :50] = np.nan  # half the draws of 20 days
    draws[20, 0] = -np.inf
    row = horizon_scores(draws, rng.standard_normal(200))
    assert row["non-finite"] == pytest.approx((20 * 50 + 1) / draws.size)
    assert np.isfinite(row["crps"]) and row["breach 1%"] < 0.05  # the losses widen its VaR
    intact = horizon_scores(rng.standard_normal((200, 100)), rng.standard_normal(200))
    assert row["crps"] > intact["crps"]


@pytest.mark.parametrize("name", ["gjr-t", "fhs"])
def test_peer_paths_read_nothing_after_the_forecast_day(sp500_returns, name):
    """Fitted before the origin and filtered up to each day: the history from the second
    forecast day on (here multiplied by 10) changes neither the parameters nor the seeded paths
    of the first two days, and does change the third's (its filter reads those days)."""
    series = sp500_returns.to_numpy()[:, 0]
    origin, _, days = forecast_days(sp500_returns.index, 2018, 21)
    changed = series.copy()
    changed[days[1]:] *= 10
    first, second = (PEERS[name].fit(s, origin).paths(days[:3], 50, seed=1)
                     for s in (series, changed))
    assert first.shape == (3, 50, PATH_DAYS)
    np.testing.assert_array_equal(first[:2], second[:2])
    assert not np.array_equal(first[2], second[2])
    assert first[2].std() < 0.05  # a daily sd of percent units would be ~1


def test_log_score_comparison_uses_hac_errors(sp500_returns):
    series = sp500_returns.to_numpy()[:, 0]
    origin, end, _ = forecast_days(sp500_returns.index, 2018, 21)
    scores = {name: PEERS[name].fit(series, origin).one_day_log_scores(origin, end)
              for name in ("gjr-t", "gjr-skewt", "fhs")}
    assert np.isnan(scores["fhs"]).all()  # an empirical law has no density
    table = compare_log_scores(scores, "gjr-t")
    assert list(table.index) == ["gjr-skewt"]  # fhs left out, the reference too
    assert 2.5 < scores["gjr-t"].mean() < 4.5  # log density of daily returns (sd ~1 %)
    assert table.loc["gjr-skewt", "HAC SE"] > 0


def test_cli_forecast_prints_every_table(tmp_path):
    result = CliRunner().invoke(app, ["forecast", "--tickers", "SP500", "--years", "2019",
                                      "--models", "gjr-t,fhs", "--n", "50", "--step", "63",
                                      "--horizons", "1,5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for title in ("crps over 1 series", "calibration over 1 series", "log_score over 1 series"):
        assert title in result.output
    assert "h=5" in result.output and "h=20" not in result.output  # the horizons asked
    assert "calibrated" in result.output  # the anchor row of the calibration table
    assert (tmp_path / "forecast.json").exists()


def test_portfolio_returns_are_the_equal_weight_portfolio_rebalanced_daily():
    a, b = np.log(1.1), np.log(0.8)
    np.testing.assert_allclose(portfolio_returns(np.array([[a, b]])), [np.log(0.95)])
    same = np.full((3, 4), 0.01)
    np.testing.assert_allclose(portfolio_returns(same), np.full(3, 0.01))


@pytest.fixture(scope="module")
def staples_returns():
    from synthfin.data.returns import log_returns
    from synthfin.data.sources import load_prices

    return log_returns(load_prices("bundled", ["KO", "PEP", "PG"], start="2012-01-01"))


def test_a_joint_portfolio_forecast_scores_every_horizon(staples_returns):
    """DCC-t and joint FHS continue the real joint history; the equal-weight portfolio's paths
    are scored at every horizon: CRPS finite and of a daily sd's order (about 0.01 x 0.56 at
    one day), coverage a share, a 90 % interval covering more than half the days."""
    run = run_portfolio_forecasts(staples_returns, [2019], ("dcc", "fhs"), n=100, step=21)
    assert run.ticker == "equal-weight KO+PEP+PG" and run.log_scores == {}
    for table in run.tables.values():
        assert list(table.index) == [1, 5, 20, 60]
        assert 0.001 < table.loc[1, "crps"] < 0.02
        assert (table["crps"].diff().dropna() > 0).all()  # wider at longer horizons
        assert 0.5 < table.loc[1, "cover 90%"] <= 1.0


def test_a_portfolio_forecast_names_what_it_cannot_do(staples_returns):
    from synthfin.errors import DataError

    with pytest.raises(DataError, match="at least 2 assets"):
        run_portfolio_forecasts(staples_returns[["KO"]], [2019])
    with pytest.raises(DataError, match=r"\['gaussian'\] cannot continue a history"):
        run_portfolio_forecasts(staples_returns, [2019], ("gaussian",))


def test_cli_forecasts_a_portfolio(tmp_path):
    result = CliRunner().invoke(app, ["forecast", "--tickers", "KO,PEP", "--years", "2019",
                                      "--portfolio", "--models", "fhs", "--n", "50",
                                      "--step", "126"])
    assert result.exit_code == 0, result.output
    assert "equal-weight KO+PEP" in result.output and "crps over 1 series" in result.output


def test_a_dense_run_scores_every_day_at_the_horizons_asked(sp500_returns):
    """A step of one day and horizons (1, 5): paths of five days from every day of the year,
    each horizon scored on the days whose realized sum is known; bad horizons are named."""
    from synthfin.backtest.forecast import run_forecasts
    from synthfin.errors import DataError

    returns = sp500_returns.loc[:"2019-12-31"]
    run = run_forecasts(returns, [2019], ["gjr-t"], n=200, step=1, horizons=(1, 5))
    table = run.tables["gjr-t"]
    in_year = int((returns.index.year == 2019).sum())
    assert list(table.index) == [1, 5]
    assert table.loc[1, "days"] == in_year and table.loc[5, "days"] == in_year - 4
    assert 0.8 < table.loc[1, "cover 90%"] < 1.0
    for bad in ((), (5, 1), (0, 5)):
        with pytest.raises(DataError, match="horizons must be increasing whole days"):
            run_forecasts(returns, [2019], ["gjr-t"], n=20, horizons=bad)


def test_any_generator_that_continues_a_history_forecasts_a_series(sp500_returns):
    """A registered context sampler (here the GARCH-t generator) joins the arch peers; one
    without an exact one-day density gets NaN log scores, left out of the comparisons."""
    from synthfin.backtest.forecast import run_forecasts

    run = run_forecasts(sp500_returns.loc[:"2019-12-31"], [2019], ["garch", "gjr-t"], n=50,
                        step=126)
    assert list(run.tables["garch"].index) == [1, 5, 20, 60]
    assert 0.001 < run.tables["garch"].loc[1, "crps"] < 0.02
    assert np.isnan(run.log_scores["garch"]).all() and np.isfinite(run.log_scores["gjr-t"]).all()
    with pytest.raises(Exception, match="unknown forecasters"):
        run_forecasts(sp500_returns, [2019], ["gaussian"])


def test_a_forecaster_validates_on_the_days_between_its_training_and_its_origin(
        sp500_returns, monkeypatch):
    """Training reads the first 80 % of the days before the origin; early stopping and the tail
    fit read the rest up to the origin's last window (the days nearest the forecasts); that
    window is the unread test split, and nothing after the origin reaches the fit."""
    import synthfin.models
    from synthfin.backtest.forecast import TRAIN_SHARE, WINDOW, fit_forecaster, forecast_days

    seen = {}

    class Recorder:
        def __init__(self, **settings):
            pass

        def fit(self, data):
            seen["data"] = data
            return self

    monkeypatch.setattr(synthfin.models, "get_generator", lambda name: Recorder)
    index = sp500_returns.index
    origin = forecast_days(index, 2019, 1)[0]
    fit_forecaster("garch", sp500_returns, origin)
    day = [d.strftime("%Y-%m-%d") for d in index]
    split = seen["data"].split_dates
    trained = round(TRAIN_SHARE * origin)
    assert split["train"] == [day[0], day[trained - 1]]
    assert split["val"] == [day[trained], day[origin - WINDOW - 1]]
    assert split["test"] == [day[origin - WINDOW], day[origin - 1]]
