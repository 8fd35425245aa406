import numpy as np
import pytest

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.errors import ConfigError
from synthfin.models.cvae import ConditionalVAE
from synthfin.models.pooling import pooled_training_windows
from synthfin.models.timegan import TimeGAN


@pytest.fixture(scope="module")
def short_windows(sp500_returns):
    """The last 1,500 days of S&P 500 (a short history), windows of 16 days."""
    import synthfin as sf
    return sf.make_windows(sp500_returns.iloc[-1500:], 16, stride=4)


def test_pooled_windows_are_each_series_scaled_and_end_before_the_targets_training(
        short_windows):
    windows, regimes, log_vol = pooled_training_windows(short_windows, ("SP500", "JPM"))
    assert windows.shape[1:] == (16, 1) and len(windows) == len(regimes) == len(log_vol)
    assert set(np.unique(regimes)) <= set(range(len(short_windows.regimes.names)))
    # each series is in units of its own training vol and its log vol standardized on its own
    assert abs(windows.std() - 1) < 0.15 and abs(log_vol.mean()) < 0.1
    one, _, _ = pooled_training_windows(short_windows, ("SP500",))
    assert 0 < len(one) < len(windows)


def test_pooled_windows_drop_every_window_after_the_targets_training_split(sp500_returns):
    import synthfin as sf
    early = sf.make_windows(sp500_returns.loc[:"2000-12-31"], 16, stride=4)
    windows, _, _ = pooled_training_windows(early, ("SP500",))
    # the target's own training windows are all the pooled S&P 500 windows there can be
    assert len(windows) == len(early.train)


def test_pretraining_needs_a_single_asset(two_asset_windows):
    with pytest.raises(ConfigError, match="single-asset"):
        pooled_training_windows(two_asset_windows, BUNDLED_TICKERS[:2])


def test_cvae_pretrains_then_fine_tunes(short_windows):
    model = ConditionalVAE(epochs=2, pretrain_epochs=2, hidden=8, latent_dim=2, progress=False,
                           device="cpu").fit(short_windows)
    phases = [row["phase"] for row in model.history_]
    assert phases == ["pretrain", "pretrain", "elbo", "elbo"]
    assert np.isfinite(model.sample(3, seed=0, length=40)).all()


def test_timegan_pretrains_then_fine_tunes(short_windows):
    settings = dict(hidden=8, z_dim=4, batch_size=32, steps_per_epoch=5, autoencoder_epochs=1,
                    supervisor_epochs=1, epochs=2, progress=False, device="cpu")
    model = TimeGAN(**settings, pretrain_epochs=2).fit(short_windows)
    phases = [row["phase"] for row in model.history_]
    assert phases == ["pretrain_autoencoder", "pretrain_supervisor", "pretrain_joint",
                      "pretrain_joint", "autoencoder", "supervisor", "joint", "joint"]
    assert np.isfinite(model.sample(3, seed=0, length=40)).all()
    plain = TimeGAN(**settings).fit(short_windows)  # the pooled phases changed the weights
    assert not np.allclose(model.sample(3, seed=0), plain.sample(3, seed=0))


def test_timegan_pretraining_needs_a_single_asset(two_asset_windows):
    with pytest.raises(ConfigError, match="single-asset"):
        TimeGAN(hidden=4, z_dim=2, steps_per_epoch=1, autoencoder_epochs=1, supervisor_epochs=1,
                epochs=1, pretrain_epochs=1, progress=False).fit(two_asset_windows)
