import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import synthfin.models.timegan  # noqa: F401  (registers "timegan")
from synthfin.data.windows import WindowData, make_windows
from synthfin.errors import ConfigError, ModelError
from synthfin.evaluation.scores import ANCHOR_T_LEVEL, score_samples
from synthfin.models import Generator, available_generators
from synthfin.models.baselines import GaussianGenerator
from synthfin.models.components import lagged_correlation
from synthfin.models.timegan import TimeGAN, gated_step

TINY = dict(hidden=8, z_dim=4, batch_size=32, steps_per_epoch=10, autoencoder_epochs=2,
            supervisor_epochs=2, epochs=2, validation_samples=64, patience=100,
            progress=False, device="cpu")


@pytest.fixture(scope="module")
def tiny_windows(sp500_returns) -> WindowData:
    """About 400 real windows of 16 days: enough to see every phase learn within a second."""
    return make_windows(sp500_returns.iloc[-1300:], 16, stride=2)


@pytest.fixture(scope="module")
def tiny_model(tiny_windows) -> TimeGAN:
    return TimeGAN(**TINY).fit(tiny_windows)


def test_timegan_is_registered_and_samples_have_the_right_shapes(tiny_model):
    assert "timegan" in available_generators()
    assert tiny_model.sample(5, seed=0).shape == (5, 16, 1)
    assert tiny_model.sample(3, condition="stressed", seed=0).shape == (3, 16, 1)
    long = tiny_model.sample(4, length=40, seed=0)  # three chained windows, cut to 40 days
    assert long.shape == (4, 40, 1) and np.isfinite(long).all()


def test_each_phase_decreases_its_own_loss(tiny_windows):
    model = TimeGAN(**{**TINY, "autoencoder_epochs": 4, "supervisor_epochs": 4,
                       "epochs": 4}).fit(tiny_windows)
    losses = {"autoencoder": "recon", "supervisor": "supervised", "joint": "g_total"}
    for phase, key in losses.items():
        curve = [row[key] for row in model.history_ if row["phase"] == phase]
        assert len(curve) == 4 and curve[-1] < curve[0], (phase, curve)


def test_same_seed_same_model_and_samples(tiny_windows, tiny_model):
    again = TimeGAN(**TINY).fit(tiny_windows)
    np.testing.assert_array_equal(again.sample(50, seed=3), tiny_model.sample(50, seed=3))
    assert not np.allclose(tiny_model.sample(50, seed=3), tiny_model.sample(50, seed=4))
    other = TimeGAN(**{**TINY, "seed": 1}).fit(tiny_windows)
    assert not np.allclose(other.sample(50, seed=3), tiny_model.sample(50, seed=3))


def test_save_load_gives_the_same_samples(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "model")
    loaded = Generator.load(tmp_path / "model")
    assert isinstance(loaded, TimeGAN)
    np.testing.assert_array_equal(loaded.sample(20, seed=7, condition="calm"),
                                  tiny_model.sample(20, seed=7, condition="calm"))
    np.testing.assert_array_equal(loaded.sample(5, seed=7, length=35),
                                  tiny_model.sample(5, seed=7, length=35))


def test_spectral_norm_stabilizer_trains_and_round_trips(tiny_windows, tmp_path):
    model = TimeGAN(**{**TINY, "stabilizer": "spectral_norm"}).fit(tiny_windows)
    loaded = Generator.load(model.save(tmp_path / "sn"))
    np.testing.assert_array_equal(loaded.sample(10, seed=0), model.sample(10, seed=0))


def test_nan_in_the_data_raises_model_error(tiny_windows, tmp_path):
    windows = tiny_windows.train.windows.copy()
    windows[:, 3, 0] = np.nan  # in every window, so the first batch already sees it
    broken = dataclasses.replace(tiny_windows,
                                 train=dataclasses.replace(tiny_windows.train, windows=windows))
    with pytest.raises(ModelError, match="non-finite loss in phase 'autoencoder'"):
        TimeGAN(**TINY).fit(broken, run_dir=tmp_path)


def test_resume_continues_a_run_and_the_history_grows(tiny_windows, tmp_path):
    first = TimeGAN(**TINY).fit(tiny_windows, run_dir=tmp_path)
    resumed = TimeGAN(**{**TINY, "epochs": 4}).fit(tiny_windows, run_dir=tmp_path, resume=True)
    assert resumed.history_[:len(first.history_)] == first.history_
    joint = [row["epoch"] for row in resumed.history_ if row["phase"] == "joint"]
    assert joint == [1, 2, 3, 4]
    assert resumed.sample(4, seed=0).shape == (4, 16, 1)


def test_invalid_settings_are_named_before_fitting():
    with pytest.raises(ConfigError, match="cell='rnn' must be one of gru, lstm"):
        TimeGAN(**{**TINY, "cell": "rnn"})
    with pytest.raises(ConfigError, match="stabilizer"):
        TimeGAN(**{**TINY, "stabilizer": "magic"})


def test_gated_step_is_a_plain_step_or_no_step_at_all():
    def one_step(gate: bool) -> tuple[torch.nn.Linear, torch.optim.Adam]:
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
        for _ in range(2):  # the second step has Adam state to keep or undo
            optimizer.zero_grad()
            net(torch.ones(4, 3)).sum().backward()
            gated_step(optimizer, torch.tensor(gate))
        return net, optimizer

    torch.manual_seed(0)
    untouched = torch.nn.Linear(3, 1)
    frozen, optimizer = one_step(False)
    torch.testing.assert_close(frozen.weight, untouched.weight, rtol=0, atol=0)
    assert all(float(s["step"]) == 0 for s in optimizer.state.values())
    moved, _ = one_step(True)
    torch.manual_seed(0)
    plain = torch.nn.Linear(3, 1)
    plain_optimizer = torch.optim.Adam(plain.parameters(), lr=0.1)
    for _ in range(2):
        plain_optimizer.zero_grad()
        plain(torch.ones(4, 3)).sum().backward()
        plain_optimizer.step()
    torch.testing.assert_close(moved.weight, plain.weight, rtol=0, atol=0)


@pytest.fixture(scope="module")
def sp500_model(sp500_windows):
    """A short CPU training on S&P 500 windows of 64 days (100 joint steps, about 40 s)."""
    model = TimeGAN(epochs=5, steps_per_epoch=20, progress=False,
                    device="cpu").fit(sp500_windows)
    assert model.diversity_ > 0.3  # no collapse
    return model


@pytest.fixture(scope="module")
def sp500_gaps(sp500_windows, sp500_model):
    """Fact gaps of the short CPU training, of the Gaussian and of the two anchors."""
    data, model = sp500_windows, sp500_model
    real = data.real_windows()
    samples = {"timegan": model.sample_returns(2000, seed=1),
               "gaussian": GaussianGenerator().fit(data).sample_returns(2000, seed=1)}
    table = score_samples(real, samples)
    return pd.concat([table.gaps, table.anchors])


def test_short_cpu_training_beats_gaussian_on_volatility_clustering(sp500_gaps):
    assert sp500_gaps.loc["timegan", "acf_abs"] < sp500_gaps.loc["gaussian", "acf_abs"], \
        sp500_gaps
    # clustering inside windows, which the level anchor (iid t x level) passes acf_abs without
    assert sp500_gaps.loc["timegan", "acf_abs_within"] \
        < sp500_gaps.loc[ANCHOR_T_LEVEL, "acf_abs_within"], sp500_gaps


def test_short_cpu_training_beats_gaussian_on_tails(sp500_gaps):
    assert sp500_gaps.loc["timegan", "tails"] < sp500_gaps.loc["gaussian", "tails"], sp500_gaps


def test_lagged_correlation_of_abs_x_in_a_two_level_scale_mixture_equals_its_closed_form():
    """Windows of iid N(0, 1) days scaled by s = 1 or 3 (one draw per window): the ACF of |x| at
    every lag is Var(s) m^2 / (E[s^2] (1 - m^2) + Var(s) m^2) with m = E|e| = sqrt(2 / pi);
    tolerance 5 / sqrt(pairs) plus the O(1/n) bias of the pooled estimate."""
    generator = torch.Generator().manual_seed(0)
    scale = 1.0 + 2.0 * torch.randint(0, 2, (4000, 1, 1), generator=generator)
    x = scale * torch.randn(4000, 32, 1, generator=generator)
    m2 = 2 / np.pi
    expected = m2 / (5 * (1 - m2) + m2)
    acf = lagged_correlation(x.abs(), 5)[:, 0].numpy()
    assert acf.shape == (5,)
    np.testing.assert_allclose(acf, expected, atol=5 / np.sqrt(4000 * 27) + 1e-3)
    iid = lagged_correlation(torch.randn(4000, 32, 1, generator=generator).abs(), 5)
    assert float(iid.abs().max()) < 5 / np.sqrt(4000 * 27)


def test_leverage_curve_sees_a_scale_set_by_the_previous_sign_and_only_at_lag_one():
    """``x_t = (1 + 0.8 [x_{t-1} < 0]) e_t`` with iid N(0, 1) ``e``: ``corr(x_t, |x_{t+1}|)``
    is negative, ``corr(x_t, |x_{t+k}|)`` for k >= 2 is 0 (the sign of ``x_{t+1}`` is that of
    ``e_{t+1}``, independent of ``x_t``), iid noise gives 0 at every lag, and flipping the sign
    of the returns flips the curve; tolerance 5 / sqrt(pairs)."""
    generator = torch.Generator().manual_seed(2)
    e = torch.randn(4000, 32, 1, generator=generator)
    x = e.clone()
    for t in range(1, 32):
        x[:, t] = (1.0 + 0.8 * (x[:, t - 1] < 0)) * e[:, t]
    tolerance = 5 / np.sqrt(4000 * 27)
    curve = lagged_correlation(x, 5, torch.abs)[:, 0].numpy()
    assert curve.shape == (5,)
    assert curve[0] < -0.1
    assert np.abs(curve[1:]).max() < tolerance
    np.testing.assert_allclose(lagged_correlation(-x, 5, torch.abs)[:, 0].numpy(), -curve,
                               atol=1e-6)
    iid = lagged_correlation(torch.randn(4000, 32, 1, generator=generator), 5, torch.abs)
    assert float(iid.abs().max()) < tolerance


def test_clustering_loss_is_zero_on_equal_batches_and_has_a_gradient():
    from synthfin.models.timegan import clustering_loss

    generator = torch.Generator().manual_seed(1)
    real = (1.0 + 2.0 * torch.randint(0, 2, (256, 1, 1), generator=generator)) \
        * torch.randn(256, 16, 1, generator=generator)
    assert float(clustering_loss(real, real)) == 0.0
    fake = torch.randn(256, 16, 1, generator=generator, requires_grad=True)
    loss = clustering_loss(fake, real)
    loss.backward()
    assert float(loss) > 0.1 and float(fake.grad.abs().sum()) > 0


def test_carrying_the_recurrent_states_raises_the_correlation_across_the_seam(sp500_model):
    """|r| correlation at lags 1-5 over pairs straddling day 64 of 128-day paths, paired over
    the same noise with and without the carried states; 4 standard errors."""
    def seam(carry: bool) -> np.ndarray:
        sp500_model.config.carry_state = carry
        paths = np.abs(sp500_model.sample_returns(2000, seed=5, length=128)[..., 0])
        a = (paths - paths.mean()) / paths.std()
        return np.mean([(a[:, 64 - lag:64] * a[:, 64:64 + lag]).mean(axis=1)
                        for lag in range(1, 6)], axis=0)

    try:
        difference = seam(True) - seam(False)
    finally:
        sp500_model.config.carry_state = True
    assert difference.mean() > 4 * difference.std(ddof=1) / np.sqrt(len(difference))


def test_correlation_loss_is_zero_on_equal_batches_and_for_one_asset_and_has_a_gradient():
    from synthfin.models.timegan import correlation_loss

    torch.manual_seed(0)
    real = torch.randn(16, 12, 3)
    assert float(correlation_loss(real.clone(), real)) == pytest.approx(0.0, abs=1e-6)
    assert float(correlation_loss(torch.randn(16, 12, 1), real[..., :1])) == 0.0
    fake = torch.randn(16, 12, 3, requires_grad=True)
    collapsed = fake[..., :1].expand(-1, -1, 3) + 0.01 * fake  # every pair ~1
    loss = correlation_loss(collapsed, real)
    assert float(loss) > 1.0  # |1 - ~0| for r and for |r|
    loss.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_two_assets_keep_their_correlation_instead_of_collapsing_onto_one():
    """Without the correlation term this setting gives 0.999 (JPM, XOM from 2010, real 0.56)."""
    from synthfin.data.returns import log_returns
    from synthfin.data.sources import load_prices
    from synthfin.stats import joint

    prices = load_prices("bundled", ["JPM", "XOM"], start="2010-01-01")
    data = make_windows(log_returns(prices), 16, stride=4)
    real = joint.mean_pairwise_correlation(data.real_windows("train"))
    model = TimeGAN(**{**TINY, "hidden": 12, "batch_size": 64, "steps_per_epoch": 20,
                       "supervisor_epochs": 1, "epochs": 6, "seed": 0}).fit(data)
    learned = joint.mean_pairwise_correlation(model.sample_returns(500, seed=0))
    assert abs(learned - real) < 0.15, (learned, real)


def test_sample_after_continues_the_volatility_of_the_history_it_reads(sp500_model,
                                                                        sp500_returns):
    """Continued from the eve of November 2008 (21-day sd 5.1 %) and of 2018 (0.37 %), the
    first week's sd differs by far more than the draws' noise (500 paths x 5 days: a few %)."""
    history = sp500_returns.to_numpy()
    calm = history[:sp500_returns.index.get_loc(sp500_returns.loc["2017-12-29"].name) + 1]
    crisis = history[:sp500_returns.index.get_loc(sp500_returns.loc["2008-10-31"].name) + 1]
    calm_paths, crisis_paths = (sp500_model.sample_after(c, 500, 70, seed=1)
                                for c in (calm, crisis))
    assert calm_paths.shape == (500, 70, 1) and np.isfinite(crisis_paths).all()
    assert crisis_paths[:, :5].std() > 2 * calm_paths[:, :5].std()


def test_sample_after_reads_only_its_context_days_and_is_seeded(tiny_model, sp500_returns):
    history = sp500_returns.to_numpy()[:3000]
    first = tiny_model.sample_after(history, 20, 40, seed=3)
    assert first.shape == (20, 40, 1)
    np.testing.assert_array_equal(first, tiny_model.sample_after(history, 20, 40, seed=3))
    changed = history.copy()
    changed[:-tiny_model.context_days] *= 5
    np.testing.assert_array_equal(first, tiny_model.sample_after(changed, 20, 40, seed=3))
    with pytest.raises(ModelError, match=r"at least \d+ days"):
        tiny_model.sample_after(history[-3:], 20, 10)
