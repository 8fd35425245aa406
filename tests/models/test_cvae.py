import json
import math

import numpy as np
import pytest
import torch
from torch import distributions

import synthfin.models.cvae as cvae
from synthfin.errors import ConfigError, ModelError
from synthfin.evaluation.scores import ANCHOR_T_LEVEL, score_samples
from synthfin.models import Generator
from synthfin.models.baselines import GaussianGenerator
from synthfin.models.components import ewma_mean_squares, update_mean_squares
from synthfin.models.cvae import ConditionalVAE, gaussian_kl, log_likelihood

FAST = {"epochs": 4, "warmup_epochs": 2, "progress": False, "device": "cpu"}
TINY = {"epochs": 1, "hidden": 8, "latent_dim": 2, "batch_size": 512, "progress": False,
        "device": "cpu"}


@pytest.fixture(scope="module")
def trained(sp500_windows):
    return ConditionalVAE(**FAST).fit(sp500_windows)


def real_windows(data):
    return data.real_windows()


def test_registered_as_cvae_with_a_shape_preserving_network():
    from synthfin.models import available_generators, get_generator
    assert "cvae" in available_generators()  # the registry import side effect ran
    assert get_generator("cvae") is ConditionalVAE
    config = cvae.CVAEConfig(hidden=8, latent_dim=3)
    model = cvae.CVAE(assets=2, regimes=3, length=16, config=config)
    x, regime, log_vol = torch.randn(5, 16, 2), torch.tensor([0, 1, 2, 1, 0]), torch.randn(5)
    c = model.condition(regime, log_vol)
    mu, log_var = model.encoder(x, c)
    assert c.shape == (5, 5) and mu.shape == log_var.shape == (5, 3)
    loc, scale, loadings = model.decoder(x, torch.cat([mu, c], dim=-1))
    assert loc.shape == scale.shape == (5, 16, 2) and (scale > 0).all()
    assert loadings.shape == (5, 16, 2, 2)  # joint noise of rank min(2, assets)
    recon, kl = cvae.elbo_terms(model, x, regime, log_vol, torch.randn(5, 3))
    assert recon.shape == (5,) and kl.shape == (5, 3)


@pytest.mark.parametrize("network, vol_inputs", [("gru", False), ("tcn", False), ("gru", True)])
def test_decoder_step_matches_the_teacher_forced_pass(network, vol_inputs):
    torch.manual_seed(0)
    config = cvae.CVAEConfig(hidden=8, latent_dim=3, network=network, vol_inputs=vol_inputs)
    decoder = cvae.CVAE(2, 3, 16, config).decoder
    x, zc = torch.randn(4, 16, 2), torch.randn(4, 8)
    loc, scale, loadings = decoder(x, zc)
    state, previous = decoder.initial_state(zc, 2), torch.zeros(4, 2)
    v = decoder.initial_mean_squares(zc) if vol_inputs else None
    for t in range(16):
        step_loc, step_scale, step_loadings, state = decoder.step(previous, zc, state, v)
        torch.testing.assert_close(step_loadings, loadings[:, t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(step_loc, loc[:, t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(step_scale, scale[:, t], rtol=1e-4, atol=1e-5)
        previous = x[:, t]
        if vol_inputs:
            v = update_mean_squares(v, previous, cvae.VOL_ALPHAS)


def test_mean_squares_are_the_exponentially_weighted_recursion():
    """Entry t of every span is (1 - a)^t v0 + a sum_{s<t} (1 - a)^(t-1-s) x_s^2."""
    x, v0 = torch.randn(3, 10, 2, dtype=torch.float64), torch.rand(3, 2, 3, dtype=torch.float64)
    v = ewma_mean_squares(x[:, :-1], cvae.VOL_ALPHAS, v0)
    assert v.shape == (3, 10, 2, 3)
    for k, alpha in enumerate(cvae.VOL_ALPHAS):
        for t in range(10):
            weights = alpha * (1 - alpha) ** torch.arange(t - 1, -1, -1, dtype=torch.float64)
            expected = (1 - alpha) ** t * v0[..., k] + (weights[None, :, None]
                                                         * x[:, :t].square()).sum(dim=1)
            torch.testing.assert_close(v[:, t, :, k], expected)


def test_kl_term_equals_the_closed_form_of_torch_distributions():
    mu, log_var = torch.randn(50, 6, dtype=torch.float64), torch.randn(50, 6, dtype=torch.float64)
    expected = distributions.kl_divergence(
        distributions.Normal(mu, torch.exp(0.5 * log_var)),
        distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(gaussian_kl(mu, log_var), expected, rtol=1e-12, atol=1e-12)


def test_joint_likelihood_equals_the_multivariate_t_and_gaussian_densities():
    from scipy import stats

    torch.manual_seed(0)
    x, loc = torch.randn(3, 7, 4, dtype=torch.float64), torch.randn(3, 7, 4, dtype=torch.float64)
    scale = torch.rand(3, 7, 4, dtype=torch.float64) + 0.1
    loadings = torch.randn(3, 7, 4, 2, dtype=torch.float64)
    sigma = loadings @ loadings.transpose(-1, -2) + torch.diag_embed(scale.square())
    gaussian = distributions.MultivariateNormal(loc, covariance_matrix=sigma).log_prob(x)
    torch.testing.assert_close(cvae.joint_log_likelihood(x, loc, scale, loadings, None), gaussian)
    df = torch.tensor([4.5], dtype=torch.float64)
    got = cvae.joint_log_likelihood(x, loc, scale, loadings, df)
    for b, t in [(0, 0), (1, 3), (2, 6)]:
        expected = stats.multivariate_t(loc[b, t].numpy(), sigma[b, t].numpy(), df=4.5).logpdf(
            x[b, t].numpy())
        assert float(got[b, t]) == pytest.approx(expected, rel=1e-10)


def test_likelihoods_equal_torch_distributions():
    x, loc = torch.randn(3, 7, 2, dtype=torch.float64), torch.randn(3, 7, 2, dtype=torch.float64)
    scale = torch.rand(3, 7, 2, dtype=torch.float64) + 0.1
    df = torch.tensor([3.5, 9.0], dtype=torch.float64)
    torch.testing.assert_close(log_likelihood(x, loc, scale, df),
                               distributions.StudentT(df, loc, scale).log_prob(x))
    torch.testing.assert_close(log_likelihood(x, loc, scale, None),
                               distributions.Normal(loc, scale).log_prob(x))


def test_samples_elbo_and_active_units_have_the_right_shapes(trained, sp500_windows):
    assert trained.sample(7, seed=1).shape == (7, 64, 1)
    assert trained.sample(1, seed=1, condition="calm").shape == (1, 64, 1)
    assert trained.sample(3, seed=1, length=200).shape == (3, 200, 1)
    assert trained.sample(2, seed=1, length=10).shape == (2, 10, 1)
    elbo = trained.elbo(sp500_windows.test, draws=2)
    assert elbo.shape == (len(sp500_windows.test),) and np.isfinite(elbo).all()
    assert 1 <= trained.active_units_ <= trained.config.latent_dim
    assert trained.kl_per_dim_.shape == (trained.config.latent_dim,)


def test_same_seed_same_samples_different_seed_different(trained):
    np.testing.assert_array_equal(trained.sample(20, seed=3), trained.sample(20, seed=3))
    assert not np.array_equal(trained.sample(20, seed=3), trained.sample(20, seed=4))


def test_fitting_twice_with_one_seed_gives_the_same_weights(sp500_windows):
    first = ConditionalVAE(seed=5, **TINY).fit(sp500_windows)
    second = ConditionalVAE(seed=5, **TINY).fit(sp500_windows)
    for key, value in first._state().items():
        np.testing.assert_array_equal(value, second._state()[key])


def test_save_load_gives_the_same_samples(trained, tmp_path):
    trained.save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "cvae"
    loaded = Generator.load(tmp_path)
    assert isinstance(loaded, ConditionalVAE) and loaded.active_units_ == trained.active_units_
    for kwargs in ({}, {"condition": "stressed"}, {"length": 150}):
        np.testing.assert_array_equal(loaded.sample(30, seed=9, **kwargs),
                                      trained.sample(30, seed=9, **kwargs))


def test_short_training_beats_gaussian_on_clustering_and_tails(trained, sp500_windows):
    data = sp500_windows
    gaussian = GaussianGenerator().fit(data)
    samples = {"cvae": trained.sample_returns(3000, seed=0),
               "gaussian": gaussian.sample_returns(3000, seed=0)}
    table = score_samples(real_windows(data), samples)
    gaps = table.gaps
    assert gaps.loc["cvae", "acf_abs"] < gaps.loc["gaussian", "acf_abs"]
    assert gaps.loc["cvae", "tails"] < gaps.loc["gaussian", "tails"]
    # clustering inside windows, which the level anchor (iid t x level) passes acf_abs without
    assert gaps.loc["cvae", "acf_abs_within"] < table.anchors.loc[ANCHOR_T_LEVEL,
                                                                   "acf_abs_within"]


def test_stressed_samples_are_more_volatile_than_calm(trained):
    def vol(regime):
        return np.sqrt(252 * np.mean(trained.sample_returns(1000, condition=regime, seed=2)**2))
    assert vol("stressed") > 1.5 * vol("calm")


def seam_and_within(model, n=2000, seed=11):
    """Per path: mean product of standardized |r| at lags 1-5 over pairs straddling day 64 (the
    seam) and over pairs inside the first window, on 200-day paths."""
    window = model.spec_.window_len
    paths = np.abs(model.sample_returns(n, seed=seed, length=200)[..., 0])  # (n, 200)
    a = (paths - paths.mean()) / paths.std()
    seam, within = np.zeros(n), np.zeros(n)
    for lag in range(1, 6):
        starts = np.arange(window - lag, window)  # t < 64 <= t + lag
        seam += (a[:, starts] * a[:, starts + lag]).mean(axis=1) / 5
        inside = np.arange(0, window - lag)
        within += (a[:, inside] * a[:, inside + lag]).mean(axis=1) / 5
    return seam, within


def test_long_paths_keep_volatility_clustering_across_the_seam(trained):
    """With the decoder state carried over, the |r| correlation across a seam is within 10 % of
    the within-window one (tolerance: 4 standard errors over paths)."""
    seam, within = seam_and_within(trained)
    difference = seam - 0.9 * within
    standard_error = difference.std(ddof=1) / math.sqrt(len(seam))
    assert seam.mean() > 4 * seam.std(ddof=1) / math.sqrt(len(seam))  # clustering across it
    assert difference.mean() > -4 * standard_error, (seam.mean(), within.mean())


def test_carrying_the_state_raises_the_correlation_across_the_seam(trained):
    carried, _ = seam_and_within(trained)
    trained.config.carry_state = False
    try:
        fresh, _ = seam_and_within(trained)
    finally:
        trained.config.carry_state = True
    difference = carried - fresh
    assert difference.mean() > 4 * difference.std(ddof=1) / math.sqrt(len(difference))


def test_nan_loss_raises_a_clear_model_error(sp500_windows, monkeypatch, tmp_path):
    monkeypatch.setattr(cvae, "log_likelihood", lambda x, *rest: x * float("nan"))
    with pytest.raises(ModelError, match="non-finite loss in phase 'elbo'.*last good"):
        ConditionalVAE(**TINY).fit(sp500_windows, run_dir=tmp_path)


def test_resume_from_run_dir_continues_the_history(sp500_windows, tmp_path):
    ConditionalVAE(**{**TINY, "epochs": 2}).fit(sp500_windows, run_dir=tmp_path)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2
    resumed = ConditionalVAE(**{**TINY, "epochs": 3}).fit(sp500_windows, run_dir=tmp_path,
                                                         resume=True)
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3]
    assert len(json.loads((tmp_path / "history.json").read_text())) == 3


def test_vol_inputs_variant_fits_carries_its_mean_squares_and_reloads(sp500_windows, tmp_path):
    model = ConditionalVAE(vol_inputs=True, **TINY).fit(sp500_windows)
    _, carry = model._decode(np.zeros(5, dtype=int), np.full(5, 0.15),
                             np.random.default_rng(0))
    assert carry[2].shape == (5, 1, len(cvae.VOL_SPANS)) and (carry[2] > 0).all()
    model.save(tmp_path)
    np.testing.assert_array_equal(Generator.load(tmp_path).sample(4, seed=0, length=150),
                                  model.sample(4, seed=0, length=150))


def test_vol_inputs_need_the_gru_decoder():
    with pytest.raises(ConfigError, match="vol_inputs=True needs network='gru'"):
        ConditionalVAE(network="tcn", vol_inputs=True)


@pytest.mark.parametrize("setting", [{"network": "lstm"}, {"likelihood": "laplace"}])
def test_unknown_network_or_likelihood_is_a_clear_error_before_fitting(setting):
    with pytest.raises(ConfigError, match="must be one of"):
        ConditionalVAE(**{**TINY, **setting})


def test_tcn_variant_fits_and_samples(sp500_windows):
    model = ConditionalVAE(network="tcn", **TINY).fit(sp500_windows)
    assert model.sample(4, seed=0, length=70).shape == (4, 70, 1)


def test_kl_warm_up_starts_at_zero_and_reaches_beta_after_the_warm_up_epochs():
    weights = [cvae.kl_weight(step, 10, 0.5, 3) for step in range(40)]
    assert weights[0] == 0.0 and weights[15] == pytest.approx(0.25)
    assert all(b > a for a, b in zip(weights[:30], weights[1:31], strict=True))
    assert weights[30:] == [0.5] * 10
    assert cvae.kl_weight(0, 10, 0.5, 0) == 0.5  # no warm-up: full weight from the start


def test_free_bits_give_no_gradient_to_dimensions_below_lambda():
    mu = torch.tensor([[0.1, 2.0], [-0.1, 1.0]], requires_grad=True)  # mean KL .005 and 1.25
    log_var = torch.zeros(2, 2, requires_grad=True)
    penalty = cvae.free_bits_kl(gaussian_kl(mu, log_var), free_bits=0.1)
    assert float(penalty) == pytest.approx(0.1 + 1.25)
    penalty.backward()
    assert (mu.grad[:, 0] == 0).all() and (log_var.grad[:, 0] == 0).all()
    torch.testing.assert_close(mu.grad[:, 1], mu.detach()[:, 1] / 2)  # d mean(mu^2/2) / d mu


def test_elbo_is_below_the_exact_log_likelihood_when_the_decoder_ignores_z():
    """With the latent's weights zeroed, p(x | z, c) = p(x | c) is exact for any z, so
    log p(x | c) is the reconstruction term, and ELBO = log p - KL(q || p(z)) <= log p."""
    torch.manual_seed(0)
    assets, latent = 2, 3
    model = cvae.CVAE(assets, 3, 16, cvae.CVAEConfig(hidden=8, latent_dim=latent)).double()
    with torch.no_grad():
        model.decoder.init.weight[:, :latent] = 0.0
        model.decoder.rnn.weight_ih_l0[:, assets:assets + latent] = 0.0
    x, regime = torch.randn(6, 16, assets, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    log_vol = torch.randn(6, dtype=torch.float64)
    log_p, _ = cvae.elbo_terms(model, x, regime, log_vol, torch.zeros(6, latent))
    for draw in range(3):
        recon, kl = cvae.elbo_terms(model, x, regime, log_vol,
                                    torch.randn(6, latent, dtype=torch.float64))
        torch.testing.assert_close(recon, log_p)  # z really is ignored
        elbo = recon - kl.sum(dim=1)
        assert (elbo <= log_p).all() and (kl.sum(dim=1) > 0).all(), draw


def test_elbo_of_a_linear_gaussian_model_reaches_log_p_only_at_the_true_posterior():
    """x = w z + s e with z, e ~ N(0, 1): log p(x) = log N(x; 0, w^2 + s^2) and the posterior is
    N(w x / (w^2 + s^2), s^2 / (w^2 + s^2)); the ELBO's parts (:func:`log_likelihood`,
    :func:`gaussian_kl`) average to log p there and stay below it elsewhere (tolerance: 5
    standard errors of the Monte Carlo mean over 200,000 draws)."""
    w, s, x = 1.5, 0.5, torch.tensor(0.8, dtype=torch.float64)
    log_p = distributions.Normal(0.0, math.sqrt(w**2 + s**2)).log_prob(x)
    post_mu, post_var = w * x / (w**2 + s**2), s**2 / (w**2 + s**2)
    noise = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def elbo(mu, var):
        z = mu + math.sqrt(var) * noise
        recon = log_likelihood(x, w * z, torch.full_like(z, s), None)
        values = recon - gaussian_kl(torch.as_tensor(mu), torch.as_tensor(math.log(var)))
        return values.mean(), values.std() / math.sqrt(len(noise))

    exact, error = elbo(float(post_mu), post_var)
    assert abs(float(exact - log_p)) < 5 * float(error) + 1e-12
    for mu, var in ((0.0, 1.0), (float(post_mu) + 0.3, post_var), (float(post_mu), 0.5)):
        value, error = elbo(mu, var)
        assert value + 5 * error < log_p, (mu, var)


def test_one_asset_keeps_the_per_asset_decoder_and_joint_rank_zero_turns_joint_noise_off():
    single = cvae.CVAE(1, 3, 16, cvae.CVAEConfig(hidden=8, latent_dim=3))
    assert single.decoder.rank == 0 and single.decoder.head.out_features == 2
    off = cvae.CVAE(3, 3, 16, cvae.CVAEConfig(hidden=8, latent_dim=3, joint_rank=0))
    assert off.decoder.rank == 0 and off.df().shape == (3,)
    joint = cvae.CVAE(3, 3, 16, cvae.CVAEConfig(hidden=8, latent_dim=3))
    assert joint.decoder.rank == 2 and joint.df().shape == (1,)


@pytest.fixture(scope="module")
def correlated_pair():
    """JPM and BAC (two banks, daily correlation ~0.75 on 2000-2022), window 32, stride 4."""
    from synthfin.data.returns import log_returns
    from synthfin.data.sources import load_prices
    from synthfin.data.windows import make_windows

    prices = load_prices("bundled", ["JPM", "BAC"], start="2000-01-01")
    return make_windows(log_returns(prices), 32, stride=4)


def test_joint_noise_learns_the_same_day_correlation_the_independent_decoder_loses(
        correlated_pair, tmp_path):
    from synthfin.stats import joint

    real = joint.mean_pairwise_correlation(correlated_pair.real_windows("train"))
    settings = {**FAST, "epochs": 20, "hidden": 16, "latent_dim": 4, "seed": 0}
    learned = {}
    for rank in (0, 2):
        model = ConditionalVAE(**settings, joint_rank=rank).fit(correlated_pair)
        learned[rank] = joint.mean_pairwise_correlation(model.sample_returns(500, seed=0))
    model.save(tmp_path)  # the joint model round-trips
    np.testing.assert_array_equal(Generator.load(tmp_path).sample(20, length=100, seed=3),
                                  model.sample(20, length=100, seed=3))
    # without joint noise only z and the shared past can correlate the assets: far below real
    assert learned[0] < real - 0.25
    assert abs(learned[2] - real) < 0.1, (learned, real)


def test_sample_after_continues_the_volatility_of_the_history_it_reads(trained, sp500_returns):
    """Continued from the eve of November 2008 (21-day sd 5.1 %) and of 2018 (0.37 %), the
    first week's sd differs by far more than the draws' noise (500 paths x 5 days: a few %):
    the decoder's state carries the history's volatility, not only the window's condition."""
    history = sp500_returns.to_numpy()
    calm = history[:sp500_returns.index.get_loc(sp500_returns.loc["2017-12-29"].name) + 1]
    crisis = history[:sp500_returns.index.get_loc(sp500_returns.loc["2008-10-31"].name) + 1]
    calm_paths, crisis_paths = (trained.sample_after(c, 500, 70, seed=1) for c in (calm, crisis))
    assert calm_paths.shape == (500, 70, 1) and np.isfinite(crisis_paths).all()
    assert crisis_paths[:, :5].std() > 3 * calm_paths[:, :5].std()
    assert trained.context_sampler() is trained  # start="today", crashes on its state


def test_sample_after_reads_only_its_context_days_and_is_seeded(trained, sp500_returns):
    history = sp500_returns.to_numpy()[:4000]
    first = trained.sample_after(history, 20, 10, seed=3)
    np.testing.assert_array_equal(first, trained.sample_after(history, 20, 10, seed=3))
    changed = history.copy()
    changed[:-trained.context_days] *= 5
    np.testing.assert_array_equal(first, trained.sample_after(changed, 20, 10, seed=3))
    per_path = np.broadcast_to(history[-trained.context_days:], (20, trained.context_days, 1))
    np.testing.assert_array_equal(first, trained.sample_after(per_path, 20, 10, seed=3))
    with pytest.raises(ModelError, match=r"at least \d+ days"):
        trained.sample_after(history[-10:], 20, 10)
