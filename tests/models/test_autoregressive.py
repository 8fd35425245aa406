"""The autoregressive density generator: exact density, causality, sampling, and its acceptance
on bundled S&P 500 (beats the Gaussian floor on clustering and tails, GARCH-t on likelihood)."""

import numpy as np
import pytest
import torch
from scipy import stats

from synthfin.data.conditions import trailing_realized_vol
from synthfin.errors import ModelError
from synthfin.evaluation import evaluate_windows
from synthfin.models import Generator
from synthfin.models.autoregressive import (
    ARNet,
    AutoregressiveConfig,
    AutoregressiveGenerator,
    student_t_mixture_log_prob,
)
from synthfin.models.baselines import GaussianGenerator, garch_one_step_log_likelihood

TINY = dict(hidden=8, layers=1, components=2, epochs=2, progress=False)


@pytest.fixture(scope="module")
def tiny(two_asset_windows):
    return AutoregressiveGenerator(**TINY).fit(two_asset_windows)


@pytest.fixture(scope="module")
def trained(sp500_windows):
    """The default configuration, trained with early stopping (about 15 s on 2 cores)."""
    return AutoregressiveGenerator(progress=False).fit(sp500_windows)


def test_mixture_log_prob_matches_scipy():
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)
    logits = torch.tensor([0.3, -0.2], dtype=torch.float64)
    loc, scale = torch.tensor([0.1, -0.5], dtype=torch.float64), torch.tensor([0.8, 2.0])
    df = torch.tensor([3.0, 7.5], dtype=torch.float64)
    ours = student_t_mixture_log_prob(x, logits, loc, scale.double(), df).numpy()
    weights = torch.softmax(logits, 0).numpy()
    direct = np.log(sum(w * stats.t.pdf(x.numpy(), d, m, s) for w, d, m, s in
                        zip(weights, df.numpy(), loc.numpy(), scale.numpy(), strict=True)))
    np.testing.assert_allclose(ours, direct, rtol=1e-10)


def test_density_integrates_to_one_per_step():
    torch.manual_seed(0)
    net = ARNet(1, 3, AutoregressiveConfig(hidden=8, layers=1, components=2)).double()
    cond = net.condition(torch.tensor([2]), torch.tensor([0.5], dtype=torch.float64))
    hidden, _ = net.step(torch.randn(1, 6, 1, dtype=torch.float64), cond, net.start(cond))
    params = net.density(hidden, torch.zeros(1, 6, 1, dtype=torch.float64))
    grid = torch.linspace(-400, 400, 400_001, dtype=torch.float64)
    for t in range(6):
        step_params = [p[0, t, 0] for p in params]
        density = torch.exp(student_t_mixture_log_prob(grid, *step_params))
        mass = torch.trapezoid(density, grid).item()
        # the tails beyond |x| = 400 scales hold < 1e-4 for df > 2
        assert mass == pytest.approx(1.0, abs=1e-4)


def test_log_prob_is_causal_in_days_and_assets(tiny):
    net = tiny.modules_["net"]
    torch.manual_seed(1)
    x = torch.randn(2, 20, 2)
    cond = net.condition(torch.tensor([0, 2]), torch.tensor([0.0, 1.0]))

    def params(inputs):
        previous = torch.nn.functional.pad(inputs[:, :-1], (0, 0, 1, 0))
        hidden, _ = net.step(previous, cond, net.start(cond))
        return net.density(hidden, inputs)

    changed = x.clone()
    changed[:, 10, 1] += 3.0  # day 10, second asset
    before, after = params(x), params(changed)
    for p, q in zip(before, after, strict=True):
        torch.testing.assert_close(p[:, :11, 0], q[:, :11, 0])  # asset 0 up to day 10
        torch.testing.assert_close(p[:, :10], q[:, :10])         # every asset before day 10
        assert not torch.allclose(p[:, 11:], q[:, 11:])           # the future does react


def test_original_scale_log_prob_adds_the_scaler_jacobian(tiny, two_asset_windows):
    data = two_asset_windows
    returns = data.unscale(data.val.windows[:5])
    ours = tiny.log_prob(returns, data.val.realized_vol[:5], per_step=True)
    net = tiny.modules_["net"]
    with torch.no_grad():
        cond = tiny._condition(data.val.regimes[:5], data.val.realized_vol[:5])
        scaled = net.log_prob(torch.as_tensor(data.val.windows[:5], dtype=torch.float32), cond)
    direct = (scaled.double().numpy() + data.scaler.log_abs_det_jacobian(returns)).sum(-1)
    np.testing.assert_allclose(ours, direct, rtol=1e-6)


def test_sampling_any_length_seeded_and_save_load(tiny, tmp_path):
    assert tiny.sample(5, seed=0).shape == (5, 32, 2)
    assert tiny.sample(3, seed=0, length=300).shape == (3, 300, 2)
    np.testing.assert_array_equal(tiny.sample(4, seed=7), tiny.sample(4, seed=7))
    assert not np.array_equal(tiny.sample(4, seed=7), tiny.sample(4, seed=8))
    tiny.save(tmp_path)
    loaded = Generator.load(tmp_path)
    np.testing.assert_array_equal(loaded.sample(4, seed=7, condition="calm"),
                                  tiny.sample(4, seed=7, condition="calm"))


def test_one_day_draws_after_a_context_follow_the_forecast_density(trained, sp500_windows):
    data = sp500_windows
    series = data.unscale(data.test.returns)
    context = series[:200]
    draws = trained.sample_after(context, 20_000, seed=0)[:, 0, 0]
    # the same forecast density on a grid of next-day returns, from log_prob
    grid = np.linspace(-0.3, 0.3, 6001)
    window = np.repeat(context[-63:][None], len(grid), axis=0)
    windows = np.concatenate([window, grid[:, None, None]], axis=1)
    vol = trailing_realized_vol(context[-84:], 21)[21:22]
    density = np.exp(trained.log_prob(windows, np.repeat(vol, len(grid)), per_step=True)[:, -1])
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)
    mean = np.trapezoid(grid * density, grid)
    std = np.sqrt(np.trapezoid((grid - mean) ** 2 * density, grid))
    assert abs(draws.mean() - mean) < 4 * std / np.sqrt(len(draws))
    assert np.median(draws) == pytest.approx(mean, abs=0.1 * std)
    assert np.std(draws) == pytest.approx(std, rel=0.1)  # heavy tails: a loose spread check


def test_bad_context_and_settings_are_clear_errors(tiny):
    with pytest.raises(ModelError, match="context must be"):
        tiny.sample_after(np.zeros((10, 2)), 5)
    with pytest.raises(ModelError, match="unknown setting"):
        AutoregressiveGenerator(hiden=3)


def test_nan_loss_stops_training_with_a_clear_error(two_asset_windows):
    with pytest.raises(ModelError, match="non-finite"):
        AutoregressiveGenerator(**{**TINY, "lr": 1e12}).fit(two_asset_windows)


def test_resume_continues_a_run(two_asset_windows, tmp_path):
    settings = {**TINY, "epochs": 1, "patience": 100}
    first = AutoregressiveGenerator(**settings).fit(two_asset_windows, run_dir=tmp_path)
    resumed = AutoregressiveGenerator(**{**settings, "epochs": 3}).fit(
        two_asset_windows, run_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in first.history_] == [1]
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]


def test_trained_model_beats_the_gaussian_on_clustering_and_tails(trained, sp500_windows):
    data = sp500_windows
    samples = {"ar": trained.sample_returns(3000, seed=0),
               "gaussian": GaussianGenerator().fit(data).sample_returns(3000, seed=0)}
    evaluation = evaluate_windows(data, samples, neural=False)
    for reference, table in evaluation.scores.items():
        for score in ("acf_abs", "acf_sq", "tails", "hill"):
            assert table.gaps.loc["ar", score] < table.gaps.loc["gaussian", score], (
                reference, score)
    assert not evaluation.memorization.loc["ar", "flagged"]
    calm = trained.sample_returns(2000, condition="calm", seed=1)
    stressed = trained.sample_returns(2000, condition="stressed", seed=1)
    assert stressed.std() > 1.5 * calm.std()


def test_trained_model_beats_garch_t_on_held_out_likelihood(trained, sp500_windows):
    data = sp500_windows
    series = data.history()
    n_train = len(data.train.returns)
    first_test = n_train + len(data.val.returns)
    garch_ll = garch_one_step_log_likelihood(series[:, 0], n_train)[first_test:]
    ar_ll = trained.one_step_log_likelihood(series, first_test)
    difference = ar_ll - garch_ll
    standard_error = difference.std(ddof=1) / np.sqrt(len(difference))
    assert difference.mean() > 2 * standard_error


def test_sample_after_refuses_non_finite_draws_and_is_the_declared_context_sampler(
        two_asset_windows):
    model = AutoregressiveGenerator(**TINY).fit(two_asset_windows)
    assert model.context_sampler() is model
    assert GaussianGenerator().fit(two_asset_windows).context_sampler() is None
    context = two_asset_windows.history()[-200:]
    with torch.no_grad():
        model.modules_["net"].head.bias[1::4] = float("nan")  # every location parameter
    torch.distributions.Distribution.set_default_validate_args(False)  # let the NaN through
    try:
        with pytest.raises(ModelError, match="non-finite samples"):
            model.sample_after(context, 5, seed=0)
    finally:
        torch.distributions.Distribution.set_default_validate_args(True)


def test_weights_saved_before_the_shared_condition_embedding_still_load(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    tiny.save(tmp_path)
    weights = load_file(str(tmp_path / "weights.safetensors"))
    weights["net.regime_embedding.weight"] = weights.pop("net.condition.embed.weight")
    save_file(weights, str(tmp_path / "weights.safetensors"))  # the file as it was written then
    np.testing.assert_array_equal(Generator.load(tmp_path).sample(4, seed=7),
                                  tiny.sample(4, seed=7))
