"""Joint scores beside their noise floors, and the anchor that must lose."""

from __future__ import annotations

import numpy as np
import pytest

from synthfin.evaluation.evaluate import evaluate
from synthfin.evaluation.joint import joint_scores
from synthfin.evaluation.scores import Reference

ASSETS = 4


def regime_windows(n: int, seed: int) -> np.ndarray:
    """Windows (n, 64, 4) of a market whose correlation rises in stress (0.2 calm, 0.8 stressed,
    regimes in runs of 8 windows) with a shared Student-t(4) scale per day (tail dependence)."""
    rng = np.random.default_rng(seed)
    stressed = np.repeat(rng.random(n // 8 + 1) < 0.3, 8)[:n]
    out = np.empty((n, 64, ASSETS))
    for i, is_stressed in enumerate(stressed):
        rho, vol = (0.8, 0.025) if is_stressed else (0.2, 0.008)
        covariance = vol**2 * (np.full((ASSETS, ASSETS), rho) + (1 - rho) * np.eye(ASSETS))
        days = rng.multivariate_normal(np.zeros(ASSETS), covariance, size=64)
        out[i] = days * np.sqrt(2.0 / rng.chisquare(4.0, size=(64, 1)))  # unit-variance t(4)
    return out


@pytest.fixture(scope="module")
def scores():
    real = regime_windows(480, seed=0)
    days = real.reshape(-1, ASSETS)
    rng = np.random.default_rng(1)
    gaussian = rng.multivariate_normal(days.mean(axis=0), np.cov(days, rowvar=False),
                                       size=(2000, 64))  # iid, the right covariance
    fresh = regime_windows(2000, seed=2)                  # the true process, new draws
    return joint_scores(Reference.blocked(real, stride=64), {"gaussian": gaussian,
                                                             "fresh": fresh})


def test_iid_gaussian_with_the_right_covariance_matches_the_mean_correlation(scores) -> None:
    assert scores.ratios.loc["gaussian", "mean_corr"] < 3.0


def test_iid_gaussian_loses_the_rise_of_correlation_in_stress_and_tail_dependence(scores
                                                                                   ) -> None:
    values = scores.values
    assert values.loc["real", "stressed_corr"] - values.loc["real", "calm_corr"] > 0.3
    # the Gaussian's trailing vol barely moves: its stressed days are as correlated as its calm
    # ones, or it has none above the real upper quartile (undefined: an infinite gap)
    rise = values.loc["gaussian", "stressed_corr"] - values.loc["gaussian", "calm_corr"]
    assert not rise > 0.05
    for fact in ("calm_corr", "stressed_corr", "tail_dependence"):
        assert scores.ratios.loc["gaussian", fact] > 3.0, fact


def test_fresh_draws_of_the_true_process_stay_near_the_floor(scores) -> None:
    for fact in ("corr_mae", "calm_corr", "stressed_corr", "tail_dependence"):
        assert scores.ratios.loc["fresh", fact] < 3.0, fact


def test_evaluate_adds_joint_scores_for_several_assets_only(two_asset_windows) -> None:
    from synthfin.evaluation.evaluate import data_references

    references = data_references(two_asset_windows)
    real = references["in_sample"].windows
    samples = {"copy": real[::-1].copy(), "nan": np.full_like(real[:10], np.nan)}
    evaluation = evaluate(references, samples, neural=False)
    assert set(evaluation.joint) == {"in_sample", "out_of_sample"}
    table = evaluation.joint["in_sample"]
    assert table.gaps.loc["copy", "corr_mae"] == pytest.approx(0.0, abs=1e-12)
    assert np.isinf(table.gaps.loc["nan", "corr_mae"])
    assert ("in_sample", "copy") in evaluation.joint_summary().index
    assert "joint" in evaluation.to_dict()
    single = evaluate(real[..., :1], {"one": real[..., :1]}, neural=False)
    assert single.joint == {} and single.joint_summary().empty


def test_report_shows_the_joint_table_and_bars(two_asset_windows, tmp_path) -> None:
    from synthfin.evaluation.evaluate import data_references

    references = data_references(two_asset_windows)
    real = references["in_sample"].windows
    evaluate(references, {"copy": real[::-1].copy()}, neural=False).save(tmp_path / "report")
    text = (tmp_path / "report" / "report.html").read_text()
    assert "Joint facts" in text and "stressed bar stands above" in text
