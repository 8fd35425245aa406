"""Training windows pooled across the bundled universe, for pretraining a window model.

A single series has a few thousand overlapping windows, too few for a deep model to learn
volatility clustering (on a short history it learns almost none). Pooled pretraining shows it the
training windows of all bundled series, each in units of its own training volatility and
conditioned on its own regimes and standardized log vol, before it fine-tunes on the target.
It is the default for a short single-asset history (:func:`pretraining`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.conditions import WindowConditions
from synthfin.data.universe import bundled_universe
from synthfin.data.windows import WindowData
from synthfin.errors import ConfigError, DataError

logger = logging.getLogger("synthfin.models")

# training days (ten years) below which a single-asset window model pretrains by default
SHORT_HISTORY_DAYS = 2520
PooledWindows = tuple[np.ndarray, np.ndarray, np.ndarray]


def pooled_training_windows(data: WindowData, tickers: Sequence[str] = BUNDLED_TICKERS
                            ) -> PooledWindows:
    """Windows (n, window_len, 1), regime codes (n,) and standardized log realized vols (n,) of
    the bundled series' training splits, cut like ``data`` (window length, stride, vol lookback,
    regime quantiles).

    Only windows that start on or before ``data``'s last training window are kept, so nothing
    after the target's training days is seen (the bundled series share one calendar).
    """
    if data.n_assets != 1:
        raise ConfigError(f"pooled pretraining needs a single-asset series; the data has "
                          f"{data.n_assets} assets ({data.assets}); set pretrain_epochs=0")
    universe = bundled_universe(tickers, window_len=data.window_len, stride=data.stride,
                                vol_lookback=data.vol_lookback,
                                regime_quantiles=data.regimes.quantiles)
    last_start = data.train.start_dates[-1]
    windows, regimes, log_vol = [], [], []
    for series in universe.values():
        train = series.train
        if len(series.regimes.names) != len(data.regimes.names):
            raise DataError(f"the pooled series have {len(series.regimes.names)} regimes, the "
                            f"target {len(data.regimes.names)}")
        keep = np.asarray(train.start_dates <= last_start)
        conditions = WindowConditions(train.regimes, train.realized_vol)
        windows.append(train.windows[keep])
        regimes.append(train.regimes[keep])
        log_vol.append(conditions.standardize(train.realized_vol[keep]))
    if sum(len(w) for w in windows) == 0:
        raise DataError(f"no bundled training window starts on or before {last_start.date()}, "
                        "the target's last training window; pretraining has nothing to learn")
    return np.concatenate(windows), np.concatenate(regimes), np.concatenate(log_vol)


def pretraining(data: WindowData, setting: int | None, default: int
                ) -> tuple[int, PooledWindows | None]:
    """A window model's pretraining epochs and the pooled windows they run on.

    ``setting`` (the model's ``pretrain_epochs``) is used as given. None, the default, means
    ``default`` epochs for a single-asset series with fewer than :data:`SHORT_HISTORY_DAYS`
    training days, where a deep model alone learns little volatility clustering, and none for
    longer or multi-asset data, or when no bundled window predates the target's training end.
    """
    if setting is not None:
        return setting, pooled_training_windows(data) if setting else None
    if data.n_assets != 1 or len(data.train.returns) >= SHORT_HISTORY_DAYS:
        return 0, None
    try:
        pooled = pooled_training_windows(data)
    except DataError as error:
        logger.info("no pooled pretraining: %s", error)
        return 0, None
    logger.info("a short history (%d training days): pretraining on the pooled universe",
                len(data.train.returns))
    return default, pooled
