"""The two references answer different questions, their floors come from disjoint windows, and a
degenerate sample set can never score well."""

import json

import numpy as np
import pytest

from synthfin.errors import DataError
from synthfin.evaluation import evaluate_windows
from synthfin.evaluation.evaluate import data_references
from synthfin.evaluation.scores import (
    ANCHOR_GAUSSIAN,
    ANCHOR_T_LEVEL,
    MAX_SCALE_RATIO,
    Reference,
)
from synthfin.models.baselines import GarchGenerator

MAIN = ["acf_r", "acf_abs", "acf_sq", "leverage", "tails"]


def _days(first_day: np.ndarray, length: int) -> set[int]:
    """Every day covered by windows starting on ``first_day``."""
    return {int(d) for start in first_day for d in range(start, start + length)}


def test_in_sample_floor_halves_share_no_day(sp500_windows):
    """Every random block assignment splits the training windows into halves that share no day,
    each holding about half of them; over the assignments both halves cover the period."""
    references = data_references(sp500_windows)
    in_sample = references["in_sample"]
    np.testing.assert_array_equal(in_sample.windows, sp500_windows.real_windows("train"))
    assert len(in_sample.assignments) > 1
    length, stride = sp500_windows.window_len, sp500_windows.stride
    n = len(in_sample.windows)
    for first, second in in_sample.assignments:
        assert not set(first) & set(second)
        first_days, second_days = (_days(part * stride, length) for part in (first, second))
        assert not first_days & second_days
        assert len(first) + len(second) > 0.7 * n
        assert min(len(first), len(second)) > 0.25 * n  # blocks of ~1 year: ~23 per half
    for side in (0, 1):
        starts = np.concatenate([pair[side] for pair in in_sample.assignments])
        assert starts.min() < 600 and starts.max() > n - 600


def test_out_of_sample_reference_is_validation_against_test(sp500_windows):
    out = data_references(sp500_windows)["out_of_sample"]
    np.testing.assert_array_equal(out.windows[out.first], sp500_windows.real_windows("val"))
    np.testing.assert_array_equal(out.windows[out.second], sp500_windows.real_windows("test"))
    assert not set(out.first) & set(out.second)
    assert len(out.first) + len(out.second) == len(out.windows)


def test_blocked_reference_with_too_few_windows_names_the_stride():
    with pytest.raises(DataError, match="stride 1 .* blocks of 256 windows"):
        Reference.blocked(np.zeros((250, 64, 1)))  # one block of 4 x 64 days: no second half


@pytest.fixture(scope="module")
def with_real_samples(sp500_windows):
    """Half of the training windows (one floor half) and the held-out windows as 'samples'."""
    in_sample = data_references(sp500_windows)["in_sample"]
    samples = {"train half": in_sample.windows[in_sample.first],
               "held-out": sp500_windows.real_windows("val", "test")}
    return evaluate_windows(sp500_windows, samples, neural=False)


def test_training_windows_score_far_better_in_sample_than_out_of_sample(with_real_samples):
    """Half the training windows reproduce the training period, not fresh data: every main gap
    is smaller in-sample, and in total less than half the out-of-sample one."""
    in_sample = with_real_samples.scores["in_sample"].ratios.loc["train half", MAIN]
    out_of_sample = with_real_samples.scores["out_of_sample"].ratios.loc["train half", MAIN]
    assert (in_sample < out_of_sample).all(), (in_sample, out_of_sample)
    assert in_sample.sum() < 0.5 * out_of_sample.sum()


def test_held_out_windows_score_perfectly_only_out_of_sample(with_real_samples):
    out_of_sample = with_real_samples.scores["out_of_sample"].ratios.loc["held-out", MAIN]
    in_sample = with_real_samples.scores["in_sample"].ratios.loc["held-out", MAIN]
    np.testing.assert_allclose(out_of_sample, 0.0, atol=1e-12)
    assert (in_sample > 0.2).all(), in_sample


@pytest.fixture(scope="module")
def degenerate_run(sp500_windows, tmp_path_factory):
    garch = GarchGenerator().fit(sp500_windows).sample_returns(1000, seed=0)
    with_nan = garch.copy()
    with_nan[7, 3, 0] = np.nan
    samples = {"zeros": np.zeros_like(garch), "constant": np.full_like(garch, 0.001),
               "with nan": with_nan, "ten times": 10 * garch, "garch": garch}
    evaluation = evaluate_windows(sp500_windows, samples, neural=False)
    directory = evaluation.save(tmp_path_factory.mktemp("degenerate"))
    return evaluation, directory


@pytest.mark.parametrize("name", ["zeros", "constant", "with nan"])
def test_undefined_facts_give_infinite_gaps(degenerate_run, name):
    evaluation, _ = degenerate_run
    for table in evaluation.scores.values():
        gaps = table.gaps.loc[name, MAIN + ["kurtosis", "hill", "vol_level"]]
        assert np.isinf(gaps).all(), gaps


def test_ten_times_the_real_scale_is_far_off_the_floor(degenerate_run):
    """The ACFs, tails and kurtosis are scale-free, so the volatility level and the Wasserstein
    distance must catch it: log(10) is several floors away (the floors are log-std gaps of
    0.1-0.6), and W1 of 10x returns is about 9 real stds."""
    evaluation, _ = degenerate_run
    for table in evaluation.scores.values():
        ratios = table.ratios.loc["ten times"]
        assert ratios["vol_level"] > 3 and ratios["w1_1d"] > 10, ratios
        np.testing.assert_allclose(ratios["acf_abs"], table.ratios.loc["garch", "acf_abs"])


def test_each_degenerate_set_is_named_in_the_warnings_the_json_and_the_report(degenerate_run):
    evaluation, directory = degenerate_run
    metrics = json.loads((directory / "metrics.json").read_text())
    html = (directory / "report.html").read_text()
    for name, reason in [("zeros", "constant"), ("constant", "constant"),
                         ("with nan", "1 non-finite"), ("ten times", "mis-scaled")]:
        line = next(w for w in metrics["warnings"] if w.startswith(f"DEGENERATE: {name!r}"))
        assert reason in line
        assert f"DEGENERATE: {name!r}".replace("'", "&#x27;") in html
    assert not any("'garch'" in w for w in evaluation.warnings)
    assert set(metrics["in_sample"]["summary"]) == set(metrics["out_of_sample"]["summary"]) == {
        "zeros", "constant", "with nan", "ten times", "garch", ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL}


def test_scale_bound_is_beyond_every_real_year(sp500_returns):
    """The mis-scale bound must not flag any real calendar year of the bundled series."""
    series = sp500_returns.iloc[:, 0]
    ratios = series.groupby(series.index.year).std() / series.std()
    assert 1 / MAX_SCALE_RATIO < ratios.min() and ratios.max() < MAX_SCALE_RATIO


def test_paths_beyond_the_plausibility_bound_are_counted_in_the_warnings(degenerate_run):
    evaluation, directory = degenerate_run
    metrics = json.loads((directory / "metrics.json").read_text())
    line = next(w for w in metrics["warnings"] if w.startswith("IMPLAUSIBLE: 'with nan'"))
    assert "1 of 1000 paths" in line
    assert not any(w.startswith("IMPLAUSIBLE: 'zeros'") for w in evaluation.warnings)
