import json

import numpy as np
import pytest

from synthfin.errors import ModelError
from synthfin.models import Generator, available_generators, get_generator
from synthfin.models.baselines import GarchGenerator, GaussianGenerator

BASELINES = ["garch", "bootstrap", "gaussian"]


@pytest.fixture(scope="module")
def fitted(sp500_windows):
    return {name: get_generator(name)().fit(sp500_windows) for name in BASELINES}


def test_registry_lists_the_baselines():
    assert set(BASELINES) <= set(available_generators())
    with pytest.raises(ModelError, match="available: "):
        get_generator("nope")


@pytest.mark.parametrize("name", BASELINES)
def test_samples_have_shape_any_length_and_are_seeded(fitted, name):
    model = fitted[name]
    assert model.sample(7, seed=1).shape == (7, 64, 1)
    assert model.sample(3, seed=1, length=300).shape == (3, 300, 1)
    np.testing.assert_array_equal(model.sample(5, seed=2), model.sample(5, seed=2))
    assert not np.array_equal(model.sample(5, seed=2), model.sample(5, seed=3))


@pytest.mark.parametrize("name", BASELINES)
def test_save_load_gives_the_same_samples(fitted, name, tmp_path):
    fitted[name].save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == name
    loaded = Generator.load(tmp_path)
    assert type(loaded) is type(fitted[name])
    for condition in (None, "stressed"):
        np.testing.assert_array_equal(loaded.sample(4, seed=9, condition=condition),
                                      fitted[name].sample(4, seed=9, condition=condition))


@pytest.mark.parametrize("name", BASELINES)
def test_stressed_samples_are_more_volatile_than_calm(fitted, name):
    calm = fitted[name].sample_returns(2000, condition="calm", seed=0)
    stressed = fitted[name].sample_returns(2000, condition="stressed", seed=0)
    assert stressed.std() > 1.5 * calm.std()


def test_unknown_regime_and_unfitted_model_are_clear_errors(fitted):
    with pytest.raises(ValueError, match="unknown regime 'panic'"):
        fitted["gaussian"].sample(2, condition="panic")
    with pytest.raises(ModelError, match="not fitted"):
        GaussianGenerator().sample(2)
    with pytest.raises(ModelError, match="unknown setting"):
        GarchGenerator(p=3)


def test_vectorized_garch_matches_the_scalar_recursion(fitted):
    model = fitted["garch"]
    mu, omega, alpha, gamma, beta = model.params_.to_array()[0, :5]
    assert 0.8 < alpha + beta < 1 and gamma == 0  # a plain GARCH fit on S&P 500 is persistent
    rng_state = np.random.default_rng(4)
    paths = model._sample(3, 50, regime=2, rng=np.random.default_rng(4))
    shocks = model._innovations(rng_state, (3, 50))[..., 0]
    for path, eps_path in zip(paths[..., 0], shocks, strict=True):
        variance = model.regime_var_[2, 0]
        for t in range(50):
            eps = np.sqrt(variance) * eps_path[t]
            assert path[t] == pytest.approx(mu + eps, rel=1e-12)
            variance = omega + (alpha + gamma * (eps < 0)) * eps**2 + beta * variance


def test_gjr_finds_the_leverage_term(sp500_windows):
    gjr = GarchGenerator(gjr=True, dist="skewt").fit(sp500_windows)
    mu, omega, alpha, gamma, beta = gjr.params_.to_array()[0, :5]
    assert gamma > alpha  # equities: bad news raises variance more than good news
    assert gjr.params_.shape_params[0, 1] < 0  # skew-t lambda: negatively skewed innovations


def test_bootstrap_copies_training_days_in_blocks(fitted, sp500_windows):
    model = fitted["bootstrap"]
    train = sp500_windows.train.returns[:, 0]
    paths = model.sample(200, seed=0, length=200)[..., 0]
    positions = {value: i for i, value in enumerate(train)}
    index = np.vectorize(positions.__getitem__)(paths)  # KeyError if a day is not a train day
    continues = np.diff(index, axis=1) == 1
    # a block ends with probability 1/b at each step (ignoring rare circular wraps)
    assert 1 - continues.mean() == pytest.approx(1 / model.block_len_, rel=0.2)


def test_gaussian_matches_training_moments(fitted, sp500_windows):
    samples = fitted["gaussian"].sample(20_000, seed=0, length=10)
    train = sp500_windows.train.returns
    se = train.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - train.mean()) < 5 * se
    assert samples.std() == pytest.approx(train.std(), rel=0.01)


def test_bootstrap_and_gaussian_keep_cross_correlation(two_asset_windows):
    real_corr = np.corrcoef(two_asset_windows.train.returns.T)[0, 1]
    for name in ("bootstrap", "gaussian"):
        samples = get_generator(name)().fit(two_asset_windows).sample(500, seed=0)
        corr = np.corrcoef(samples.reshape(-1, 2).T)[0, 1]
        assert corr == pytest.approx(real_corr, abs=0.1), name


def test_garch_copula_reproduces_the_residual_dependence(two_asset_windows):
    """The copula fixes the innovations' dependence; returns decorrelate somewhat because the two
    variance processes evolve independently (documented: no volatility spill-over)."""
    model = GarchGenerator().fit(two_asset_windows)
    shocks = model._innovations(np.random.default_rng(0), (2000, 50)).reshape(-1, 2)
    n = len(shocks)
    rank_corr = np.corrcoef(np.argsort(np.argsort(shocks, axis=0), axis=0).T)[0, 1]
    copula = model.copula_corr_[0, 1]
    expected_spearman = 6 / np.pi * np.arcsin(copula / 2)  # Gaussian copula
    assert rank_corr == pytest.approx(expected_spearman, abs=5 / np.sqrt(n))
    returns = model.sample(500, seed=0).reshape(-1, 2)
    assert 0 < np.corrcoef(returns.T)[0, 1] < copula


def test_garch_sample_after_filters_the_history_as_arch_does(fitted, sp500_returns):
    """The variance after a real history equals ``arch``'s one-day forecast with the same fixed
    parameters (its backcast start has faded after 1,000 days), and the draws' std matches it
    within 4 sampling errors (relative SE of a std sqrt((kurtosis - 1) / 4n): 0.8 % for
    20,000 unit-variance t(6) draws, kurtosis 6)."""
    from arch import arch_model

    model = fitted["garch"]
    spec = model._spec()
    history = sp500_returns.to_numpy()[:6500]
    scaled = spec.scaler.transform(history)[:, 0]
    mu, omega, alpha, _, beta, nu, _ = model.params_.to_array()[0]
    fixed = arch_model(scaled, mean="Constant", vol="GARCH", p=1, q=1, dist="t",
                       rescale=False).fix([mu, omega, alpha, beta, nu])
    expected = fixed.forecast(horizon=1, reindex=False).variance.iloc[-1, 0]
    variance = model.filtered_variance(spec.scaler.transform(history)[None])[0, 0]
    assert variance == pytest.approx(expected, rel=1e-6)
    draws = model.sample_after(history, 20000, length=3, seed=0)
    assert draws.shape == (20000, 3, 1)
    assert draws[:, 0, 0].std() == pytest.approx(np.sqrt(expected) * spec.scaler.std_[0],
                                                 rel=4 * np.sqrt(5 / 80000))
    assert model.context_sampler() is model


def test_garch_sample_after_a_crash_is_more_volatile_than_after_calm(fitted, sp500_returns):
    model = fitted["garch"]
    history = sp500_returns.to_numpy()[:3000]
    crash = np.concatenate([history, [[-0.2]]])
    calm, shocked = (model.sample_after(h, 4000, seed=1)[:, 0, 0].std() for h in (history, crash))
    assert shocked > 2 * calm
    per_path = model.sample_after(np.stack([history, history[::-1]]), 2, length=4, seed=1)
    assert per_path.shape == (2, 4, 1)
    with pytest.raises(ModelError, match="context must be finite"):
        model.sample_after(np.full((10, 2), 0.01), 5)
