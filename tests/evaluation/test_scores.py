"""The evaluator must separate what it should, on bundled S&P 500 windows of 64 days."""

import numpy as np
import pytest

from synthfin.evaluation import evaluate, evaluate_windows
from synthfin.evaluation.neural import NeuralScoreConfig, discriminative_score
from synthfin.evaluation.scores import (
    ANCHOR_GAUSSIAN,
    ANCHOR_T_LEVEL,
    Reference,
    memorization,
    nearest_distances,
    score_samples,
)
from synthfin.models.baselines import BlockBootstrap, GarchGenerator, GaussianGenerator
from synthfin.stats import facts

MAIN = ["acf_abs", "acf_sq", "leverage", "tails", "w1_1d"]
BAR = 1.5  # DEVELOPERS.md: a good model comes within about 1.5x of the noise floor


@pytest.fixture(scope="module")
def real_sets(sp500_windows):
    d = sp500_windows
    return {"all": d.real_windows(),
            "train": d.unscale(d.train.windows),
            "held_out": d.real_windows("val", "test")}


@pytest.fixture(scope="module")
def table(sp500_windows):
    samples = {name: model.fit(sp500_windows).sample_returns(2000, seed=0) for name, model in
               [("garch", GarchGenerator()), ("bootstrap", BlockBootstrap()),
                ("gaussian", GaussianGenerator())]}
    return evaluate_windows(sp500_windows, samples, neural=False)


def test_two_disjoint_real_sets_score_at_the_noise_floor(real_sets):
    """Train-period windows against held-out windows: no score far above the floor (a ratio of
    two noisy distances, so 2x rather than 1x is the limit)."""
    result = score_samples(real_sets["held_out"], {"real train": real_sets["train"]})
    ratios = result.ratios.loc["real train", MAIN]
    assert (ratios < 2.0).all(), ratios


def test_gaussian_is_flagged_on_tails_and_clustering(table):
    for reference, bar in (("out_of_sample", BAR), ("in_sample", 1.0)):
        ratios = table.scores[reference].ratios.loc["gaussian"]
        assert (ratios[["acf_abs", "acf_sq", "tails", "hill"]] > bar).all(), (reference, ratios)
    assert not table.memorization.loc["gaussian", "flagged"]


def test_bootstrap_wins_in_sample_only_and_is_flagged_for_memorization(table):
    """The bootstrap replays the training period: under 1x every in-sample floor, but not
    out of sample, where it is no closer than the training windows themselves are."""
    in_sample = table.scores["in_sample"].ratios.loc["bootstrap", MAIN]
    out_of_sample = table.scores["out_of_sample"].ratios.loc["bootstrap", MAIN]
    assert (in_sample < 1.0).all() and (out_of_sample > 1.0).any(), (in_sample, out_of_sample)
    memo = table.memorization.loc["bootstrap"]
    assert memo["flagged"] and memo["copy_share"] > 0.1 and memo["median_ratio"] < 0.5
    assert not table.memorization.loc["garch", "flagged"]


def test_garch_has_clustering_but_no_leverage_and_gjr_some(sp500_windows, real_sets):
    def mean_leverage(x: np.ndarray) -> float:
        return float(facts.leverage_curve(x[..., 0], 10).mean())

    real_leverage = mean_leverage(real_sets["all"])
    levels = {}
    for name, model in [("garch", GarchGenerator()), ("gjr", GarchGenerator(gjr=True))]:
        model.fit(sp500_windows)
        draws = [model.sample_returns(5000, seed=seed) for seed in range(4)]
        values = np.array([mean_leverage(x) for x in draws])
        levels[name] = (values.mean(), values.std(ddof=1) / np.sqrt(len(values)))
        if name == "garch":
            assert facts.acf_abs(draws[0][..., 0], 1)[0] > 0.2  # real: 0.28, iid: 0
    garch, gjr = levels["garch"], levels["gjr"]
    assert real_leverage < -0.05
    assert abs(garch[0]) < 3 * garch[1] + 0.01  # symmetric GARCH: zero leverage
    assert gjr[0] < -3 * gjr[1]                 # GJR: negative, ...
    assert gjr[0] > real_leverage               # ... but weaker than the real one


def test_nearest_distances_match_brute_force(rng):
    queries, pool = rng.normal(size=(30, 8, 2)), rng.normal(size=(50, 8, 2))
    brute = np.linalg.norm(queries[:, None] - pool[None], axis=(2, 3)).min(axis=1)
    np.testing.assert_allclose(nearest_distances(queries, pool, chunk=7), brute, rtol=1e-9)


def test_memorization_separates_copies_from_fresh_draws(rng):
    train, held_out = rng.normal(size=(400, 16, 1)), rng.normal(size=(200, 16, 1))
    copies = memorization(train[:100], train, held_out)
    assert copies.copy_share == 1.0 and copies.flagged
    fresh = memorization(rng.normal(size=(200, 16, 1)), train, held_out)
    assert fresh.copy_share == 0.0 and not fresh.flagged
    assert fresh.median_ratio == pytest.approx(1.0, abs=0.1)


def test_discriminative_score_separates_a_rescaled_set(real_sets):
    config = NeuralScoreConfig(epochs=6, max_windows=600, repeats=1)
    real = real_sets["held_out"]
    same, _ = discriminative_score(real[::2], real[1::2], config=config)
    different, _ = discriminative_score(real[::2], 3 * real[1::2], config=config)
    assert same < 0.15 < 0.3 < different


def test_evaluate_collects_everything_and_warns(real_sets, rng):
    real = real_sets["held_out"][::4]
    collapsed = np.repeat(real[:1], 50, axis=0) + 1e-6 * rng.normal(size=(50, 64, 1))
    result = evaluate(real, {"copies": real_sets["train"][:300], "collapsed": collapsed},
                      train=real_sets["train"], held_out=real, seed=0,
                      neural_config=NeuralScoreConfig(epochs=1, max_windows=100, repeats=1))
    text = "\n".join(result.warnings)
    assert "MEMORIZATION: 'copies'" in text and "COLLAPSE: 'collapsed'" in text
    assert {"copies", "collapsed", "real (TRTR)"} == set(result.secondary.index)
    summary = result.summary("reference")
    assert list(summary.index) == ["copies", "collapsed", ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL]
    assert "acf_abs /floor" in summary
    metrics = result.to_dict()
    assert metrics["facts"]["real (reference)"]["n_windows"] == len(real)


def test_in_sample_floor_does_not_depend_on_where_the_blocks_start(real_sets):
    """One split moved the acf_abs floor from 1.06 to 0.215 when the blocks shifted by 128
    windows; the mean over random assignments moves by less than 3 standard errors of the
    difference of the two means."""
    train = real_sets["train"]
    floors = [score_samples(Reference.blocked(train[shift:]), {}) for shift in (0, 128)]
    for key in MAIN:
        means = [f.floor[key] for f in floors]
        se = np.sqrt(sum(f.floor_spread[key] ** 2 for f in floors) / 32)
        assert abs(means[0] - means[1]) < 3 * se, (key, means, se)
        assert all(f.floor_spread[key] > 0 for f in floors)


def test_a_single_split_floor_gets_a_spread_from_block_bootstrap_replicates(sp500_windows):
    """Validation against test is one split: its floor stays that split's gaps, and its spread
    (the sd over 16 replicates that redraw blocks of 252 days within each half) is finite,
    positive and of the order of the in-sample floor's spread over block assignments; the
    replicates never mix the halves."""
    d = sp500_windows
    val, test = d.real_windows("val"), d.real_windows("test")
    split = Reference.split(val, test, d.stride)
    floor, spread = split.floor()
    one, _ = Reference(split.windows, split.first, split.second).floor()
    np.testing.assert_allclose(floor[MAIN], one[MAIN])  # the replicates do not move it
    assert len(split.resamples) == 16 and (spread[MAIN] > 0).all()
    for a, b in split.resamples:
        assert len(a) == len(val) and len(b) == len(test)
        assert a.max() < len(val) <= b.min()
    _, blocked_spread = Reference.blocked(d.real_windows("train"), d.stride).floor()
    ratio = spread[MAIN] / blocked_spread[MAIN]
    assert ((ratio > 0.1) & (ratio < 10)).all(), ratio
    again = Reference.split(val, test, d.stride).floor()[1]
    np.testing.assert_array_equal(again[MAIN], spread[MAIN])  # seeded


def test_an_iid_t_with_a_level_per_window_is_labelled_blind_on_acf_abs(real_sets):
    """Pooled |r| autocorrelations across windows see levels that differ between windows: iid
    t days with a lognormal level per window pass acf_abs in sample, and the table says so;
    the iid Gaussian does not pass it."""
    table = score_samples(Reference.blocked(real_sets["train"]), {})
    assert table.anchor_ratios.loc[ANCHOR_T_LEVEL, "acf_abs"] < 1.0
    assert table.blind["acf_abs"]
    assert table.anchor_ratios.loc[ANCHOR_GAUSSIAN, "acf_abs"] > 1.5
