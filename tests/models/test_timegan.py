import dataclasses

import numpy as np
import pytest
import torch

import synthfin.models.timegan  # noqa: F401  (registers "timegan")
from synthfin.data.scaling import ReturnScaler
from synthfin.data.windows import WindowData, make_windows
from synthfin.errors import ConfigError, ModelError
from synthfin.evaluation.scores import score_samples
from synthfin.models import Generator, available_generators
from synthfin.models.baselines import GaussianGenerator
from synthfin.models.timegan import TimeGAN, VolScale, VolStateGenerator, gated_step, lambertw

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
    """Fact gaps of the short CPU training and of the Gaussian."""
    data, model = sp500_windows, sp500_model
    real = data.real_windows()
    samples = {"timegan": model.sample_returns(2000, seed=1),
               "gaussian": GaussianGenerator().fit(data).sample_returns(2000, seed=1)}
    return score_samples(real, samples).gaps


def test_short_cpu_training_beats_gaussian_on_volatility_clustering(sp500_gaps):
    assert sp500_gaps.loc["timegan", "acf_abs"] < sp500_gaps.loc["gaussian", "acf_abs"], \
        sp500_gaps


def test_short_cpu_training_beats_gaussian_on_tails(sp500_gaps):
    assert sp500_gaps.loc["timegan", "tails"] < sp500_gaps.loc["gaussian", "tails"], sp500_gaps


def test_abs_acf_of_a_two_level_scale_mixture_equals_its_closed_form():
    """Windows of iid N(0, 1) days scaled by s = 1 or 3 (one draw per window): the ACF of |x| at
    every lag is Var(s) m^2 / (E[s^2] (1 - m^2) + Var(s) m^2) with m = E|e| = sqrt(2 / pi);
    tolerance 5 / sqrt(pairs) plus the O(1/n) bias of the pooled estimate."""
    from synthfin.models.timegan import abs_acf

    generator = torch.Generator().manual_seed(0)
    scale = 1.0 + 2.0 * torch.randint(0, 2, (4000, 1, 1), generator=generator)
    x = scale * torch.randn(4000, 32, 1, generator=generator)
    m2 = 2 / np.pi
    expected = m2 / (5 * (1 - m2) + m2)
    acf = abs_acf(x, 5)[:, 0].numpy()
    assert acf.shape == (5,)
    np.testing.assert_allclose(acf, expected, atol=5 / np.sqrt(4000 * 27) + 1e-3)
    iid = abs_acf(torch.randn(4000, 32, 1, generator=generator), 5)
    assert float(iid.abs().max()) < 5 / np.sqrt(4000 * 27)


def test_batch_leverage_sees_a_scale_set_by_the_previous_sign_and_only_at_lag_one():
    """``x_t = (1 + 0.8 [x_{t-1} < 0]) e_t`` with iid N(0, 1) ``e``: ``corr(x_t, |x_{t+1}|)``
    is negative, ``corr(x_t, |x_{t+k}|)`` for k >= 2 is 0 (the sign of ``x_{t+1}`` is that of
    ``e_{t+1}``, independent of ``x_t``), iid noise gives 0 at every lag, and flipping the sign
    of the returns flips the curve; tolerance 5 / sqrt(pairs)."""
    from synthfin.models.timegan import batch_leverage

    generator = torch.Generator().manual_seed(2)
    e = torch.randn(4000, 32, 1, generator=generator)
    x = e.clone()
    for t in range(1, 32):
        x[:, t] = (1.0 + 0.8 * (x[:, t - 1] < 0)) * e[:, t]
    tolerance = 5 / np.sqrt(4000 * 27)
    curve = batch_leverage(x, 5)[:, 0].numpy()
    assert curve.shape == (5,)
    assert curve[0] < -0.1
    assert np.abs(curve[1:]).max() < tolerance
    np.testing.assert_allclose(batch_leverage(-x, 5)[:, 0].numpy(), -curve, atol=1e-6)
    iid = batch_leverage(torch.randn(4000, 32, 1, generator=generator), 5)
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


def _vol_state_generator(start: str = "stationary") -> VolStateGenerator:
    torch.manual_seed(0)
    net = VolStateGenerator(z_dim=3, hidden=8, output_dim=8, layers=1, cell="gru",
                            n_regimes=3, condition_dim=2, factors=3, start=start)
    with torch.no_grad():
        net.rho_raw.fill_(0.6)  # leverage on, so the carried z_{t,0} matters too
    return net


def test_vol_state_factors_are_stationary_with_unit_variance_and_ar1_persistence():
    """20000 paths of 300 days from the stationary start: the variance of every factor on
    days 1, 100 and 300 is 1 (sd of a sample variance sqrt(2/n) = 0.01; 5 sd), and the lag-1
    autocorrelation on day 300 is phi (sd about (1 - phi^2)/sqrt(n) < 0.007; 0.03)."""
    net = _vol_state_generator()
    g = torch.Generator().manual_seed(0)
    eps, z0 = torch.randn(20000, 300, 3, generator=g), torch.randn(20000, 300, generator=g)
    with torch.no_grad():
        a, _ = net.factors(eps, z0, torch.zeros(20000), None)
    for day in (0, 99, 299):
        np.testing.assert_allclose(a[:, day].var(0).numpy(), 1.0, atol=0.05)
    lag1 = (a[:, 298] * a[:, 299]).mean(0) / a[:, 299].var(0)
    np.testing.assert_allclose(lag1.numpy(), net.phi.detach().numpy(), atol=0.03)
    assert ((net.phi > 0) & (net.phi < 1)).all()


def test_vol_state_condition_start_sets_the_first_day_from_the_vol_condition():
    """``a_1 = u v + sqrt(1 - u^2) eps``: mean u v and variance 1 - u^2 over 20000 draws
    (sd of the mean < 0.01, of the variance < 0.01; 5 sd)."""
    net = _vol_state_generator("condition")
    u = torch.tanh(net.start_raw).detach()
    eps = torch.randn(20000, 2, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, _ = net.factors(eps, torch.zeros(20000, 2), torch.full((20000,), 1.5), None)
    np.testing.assert_allclose(a[:, 0].mean(0).numpy(), 1.5 * u.numpy(), atol=0.05)
    np.testing.assert_allclose(a[:, 0].var(0).numpy(), (1 - u**2).numpy(), atol=0.05)


@pytest.mark.parametrize("start", ["stationary", "condition"])
def test_vol_state_continues_exactly_across_a_seam(start):
    """Two 20-day windows chained through the end state give the same latent as one 40-day
    run on the same noise: one continuous volatility recursion and recurrent state."""
    net = _vol_state_generator(start)
    noise = torch.randn(5, 40, 6, generator=torch.Generator().manual_seed(1))
    regime, log_vol = torch.tensor([0, 1, 2, 1, 0]), torch.linspace(-1, 1, 5)
    with torch.no_grad():
        whole, _ = net.run(noise, regime, log_vol)
        first, state = net.run(noise[:, :20], regime, log_vol)
        second, _ = net.run(noise[:, 20:], regime, log_vol, state)
        restarted, _ = net.run(noise[:, 20:], regime, log_vol)
        level = net.log_scale(noise, log_vol)[0]
        level_second = net.log_scale(noise[:, 20:], log_vol, state)[0]
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    torch.testing.assert_close(level_second, level[:, 20:])
    assert not torch.allclose(restarted, whole[:, 20:])


def test_vol_state_trains_keeps_phi_in_the_unit_interval_and_round_trips(tiny_windows,
                                                                            tmp_path):
    model = TimeGAN(**{**TINY, "vol_state": True}).fit(tiny_windows)
    generator = model.modules_["generator"]
    assert isinstance(generator, VolStateGenerator) and model.config.noise_dim == 4 + 3
    assert ((generator.phi > 0) & (generator.phi < 1)).all()
    loaded = Generator.load(model.save(tmp_path / "vs"))
    np.testing.assert_array_equal(loaded.sample(6, seed=2, length=40),
                                  model.sample(6, seed=2, length=40))
    with pytest.raises(ConfigError, match="vol_start"):
        TimeGAN(**{**TINY, "vol_start": "random"})
    with pytest.raises(ConfigError, match="condition_vol=True"):
        TimeGAN(**{**TINY, "vol_state": True, "condition_vol": False})


def test_lambertw_matches_scipy_from_zero_to_the_far_tail():
    from scipy.special import lambertw as scipy_lambertw

    x = torch.tensor([0.0, 1e-8, 0.01, 0.5, 1.0, 7.0, 50.0, 1e3], dtype=torch.float64)
    np.testing.assert_allclose(lambertw(x).numpy(), scipy_lambertw(x.numpy()).real,
                               rtol=1e-12, atol=1e-15)


def test_vol_scale_is_the_same_map_in_network_and_return_space():
    """``network(y, l)`` is ``transform(returns(y, l))``: the losses see exactly the gaussianized
    version of the samples the model returns; a zero level leaves ``y`` as it is."""
    rng = np.random.default_rng(0)
    tails = ReturnScaler(gaussianize=True).fit(0.01 * rng.standard_t(3, size=(5000, 2)))
    assert (tails.delta_ > 0.05).all()  # heavy tails, so the transform is far from linear
    scale = VolScale(tails, 0.7, torch.device("cpu"))
    y = rng.standard_normal((4, 30, 2)) * 1.5
    level = rng.standard_normal((4, 30, 1))
    network = scale.network(torch.as_tensor(y, dtype=torch.float32),
                            torch.as_tensor(level, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(network, tails.transform(scale.returns(y, level)), atol=2e-5)
    np.testing.assert_allclose(scale.network(torch.as_tensor(y, dtype=torch.float32),
                                             torch.zeros(4, 30, 1)).numpy(), y, atol=2e-5)
    np.testing.assert_allclose(scale.returns(y, np.zeros((4, 30, 1))), tails.inverse(y))


def test_vol_scale_trains_round_trips_and_needs_vol_state(tiny_windows, tmp_path):
    model = TimeGAN(**{**TINY, "vol_state": True, "vol_scale": 0.5}).fit(tiny_windows)
    samples = model.sample(6, seed=2, length=40)
    assert np.isfinite(samples).all()
    loaded = Generator.load(model.save(tmp_path / "vscale"))
    np.testing.assert_array_equal(loaded.sample(6, seed=2, length=40), samples)
    with pytest.raises(ConfigError, match="vol_state=True"):
        TimeGAN(**{**TINY, "vol_scale": 0.5})
    with pytest.raises(ConfigError, match="vol_scale"):
        TimeGAN(**{**TINY, "vol_state": True, "vol_scale": -1.0})


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
