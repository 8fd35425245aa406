import numpy as np
import pytest

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.errors import ConfigError, DataError
from synthfin.models.cvae import ConditionalVAE
from synthfin.models.pooling import SHORT_HISTORY_DAYS, pooled_training_windows, pretraining


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


def test_a_short_single_asset_history_pretrains_by_default(short_windows, sp500_windows,
                                                           two_asset_windows):
    epochs, pooled = pretraining(short_windows, None, 7)
    assert epochs == 7 and len(pooled[0]) > len(short_windows.train)
    assert len(sp500_windows.train.returns) >= SHORT_HISTORY_DAYS  # a long history: none
    assert pretraining(sp500_windows, None, 7) == (0, None)
    assert pretraining(two_asset_windows, None, 7) == (0, None)
    assert pretraining(short_windows, 0, 7) == (0, None)  # a setting is kept as it is
    assert pretraining(sp500_windows, 3, 7)[0] == 3


def test_default_pretraining_is_skipped_when_no_pooled_window_is_old_enough():
    import pandas as pd

    import synthfin as sf
    dates = pd.bdate_range("1980-01-01", periods=1200)
    returns = pd.DataFrame({"OLD": np.random.default_rng(0).standard_t(4, 1200) * 0.01},
                           index=dates)
    data = sf.make_windows(returns, 16, stride=4)
    assert pretraining(data, None, 7) == (0, None)
    with pytest.raises(DataError, match="no bundled training window"):
        pretraining(data, 2, 7)


def test_cvae_pretrains_by_default_on_a_short_history(short_windows, monkeypatch):
    import synthfin.models.cvae as cvae_module
    monkeypatch.setattr(cvae_module, "AUTO_PRETRAIN_EPOCHS", 1)
    model = ConditionalVAE(epochs=1, hidden=8, latent_dim=2, progress=False,
                           device="cpu").fit(short_windows)
    assert [row["phase"] for row in model.history_] == ["pretrain", "elbo"]
