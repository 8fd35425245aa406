"""The catalogue names each fact once: scores, the summary and the report read the same entries."""

import numpy as np
import pytest

from synthfin.evaluation import report
from synthfin.evaluation.evaluate import Evaluation
from synthfin.evaluation.scores import Reference, score_samples
from synthfin.evaluation.streaming import StreamingFacts
from synthfin.stats import (
    FACTS,
    FACTS_BY_NAME,
    LONG_FACTS,
    catalogue,
    fact_statistics,
    facts,
    reducers,
    stylized_facts,
)
from synthfin.stats.catalogue import (
    Fact,
    clustering_max_lag,
    linear_max_lag,
    volatility_drift,
    volatility_level,
)


def test_fact_statistics_has_one_entry_per_fact_and_cross_correlations_for_assets(rng):
    x = rng.standard_t(5, size=(40, 64, 2)) * 0.01
    statistics = fact_statistics(x)
    assert list(statistics) == [fact.name for fact in FACTS] + ["cross_corr"]
    assert list(fact_statistics(x[..., :1])) == [fact.name for fact in FACTS]
    assert len(statistics["acf_abs"]) == 2 * 32 and len(statistics["acf_r"]) == 2 * 20
    np.testing.assert_array_equal(statistics["acf_abs"][:32], facts.acf_abs(x[..., 0], 32))


@pytest.mark.parametrize("length, linear, clustering", [(2, 1, 1), (24, 20, 12), (64, 20, 32),
                                                         (256, 20, 100)])
def test_lag_rules(length, linear, clustering):
    assert (linear_max_lag(length), clustering_max_lag(length)) == (linear, clustering)
    assert FACTS_BY_NAME["leverage"].lag_rule(length) == linear


def test_stylized_facts_uses_the_catalogue_names(rng):
    summary = stylized_facts(rng.normal(size=(30, 64)) * 0.01)
    assert {fact.name for fact in FACTS} <= set(summary)
    assert isinstance(summary["kurtosis"], float) and len(summary["hill"]) == 2


def test_volatility_level_sees_a_rescaling_that_every_other_fact_misses(rng):
    x = rng.standard_t(4, size=(50, 64, 1)) * 0.01
    plain, scaled = fact_statistics(x), fact_statistics(10 * x)
    assert volatility_level(10 * x) - volatility_level(x) == pytest.approx(np.log(10))
    for name in ("acf_r", "acf_abs", "acf_sq", "leverage", "tails", "hill", "kurtosis"):
        np.testing.assert_allclose(scaled[name], plain[name], rtol=1e-9, atol=1e-12)


def test_drawdowns_of_a_known_path():
    # log price 0, .1, -.1, -.05, .15, .05: peak .1 then -.1 (depth 1 - e^-.2), two days under
    depth, duration = facts.drawdowns([0.1, -0.2, 0.05, 0.2, -0.1])
    assert depth[0] == pytest.approx(1 - np.exp(-0.2))
    assert duration[0] == 2


def test_realized_volatility_annualizes_block_root_mean_squares():
    x = np.r_[np.full(21, 0.01), np.full(21, -0.02), np.full(5, 1.0)]  # last block incomplete
    np.testing.assert_allclose(facts.realized_volatility(x), [[0.01 * np.sqrt(252),
                                                               0.02 * np.sqrt(252)]])


def test_volatility_drift_is_zero_when_stationary_and_one_when_vol_doubles(rng):
    stationary = rng.normal(size=(200, 756)) * 0.01
    assert abs(volatility_drift(stationary)) < 0.02  # std error of a median ratio: ~0.005
    doubling = stationary.copy()
    doubling[:, -252:] *= 2
    assert volatility_drift(doubling) == pytest.approx(1.0, abs=0.03)
    assert np.isnan(volatility_drift(stationary[:, :300]))


def test_long_facts_have_distinct_names():
    names = [fact.name for fact in LONG_FACTS]
    assert len(set(names)) == len(names) and "power_law_beta" in names


def _leverage_abs(x, max_lag):
    windows = facts.as_windows(x)
    return facts._lagged_correlation(windows, np.abs(windows), range(1, max_lag + 1))


LEVERAGE_ABS = Fact("leverage_abs", _leverage_abs, "correlation of r with future |r|",
                    linear_max_lag, kind="curve", reducer=reducers.lagged(reducers.returns, np.abs),
                    headline=True, figure="leverage", title="corr(r_t, |r|_t+k)")


def test_a_new_fact_is_one_entry_that_streaming_scores_summary_and_report_pick_up(monkeypatch,
                                                                                  rng):
    monkeypatch.setattr(catalogue, "FACTS", (*FACTS, LEVERAGE_ABS))
    real = rng.standard_t(4, size=(600, 32, 1)) * 0.01
    synthetic = rng.standard_t(4, size=(300, 32, 1)) * 0.01
    streaming = StreamingFacts(32, 1)
    streaming.update(real[:250])
    streaming.update(real[250:])
    np.testing.assert_allclose(streaming.statistics()["leverage_abs"],
                               fact_statistics(real)["leverage_abs"], rtol=1e-9, atol=1e-12)
    reference = Reference.blocked(real, assignments=2)
    table = score_samples(reference, {"t": synthetic})
    assert "leverage_abs" in table.gaps and "leverage_abs" in table.standardized
    evaluation = Evaluation({"in_sample": reference}, {"t": synthetic}, ["a"],
                            {"in_sample": table})
    assert "leverage_abs /floor" in evaluation.summary("in_sample")
    drawn = []
    monkeypatch.setattr(report, "_to_base64", lambda figure: drawn.append(figure) or "")
    report._leverage_figure(evaluation, 0, {"t": "tab:red"})
    assert [axes.get_title() for axes in drawn[0].axes] == [
        "Leverage: corr(r_t, r²_t+k)", "corr(r_t, |r|_t+k)"]
