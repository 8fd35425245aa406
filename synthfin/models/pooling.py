"""Training data pooled across a universe of series, for pretraining: windows for the window
models (cvae, timegan) and whole series for the autoregressive model's likelihood.

A single series has a few thousand overlapping windows, too few for a deep model to learn
volatility clustering (on a short history it learns almost none). Pooled pretraining shows it the
training windows of all bundled series, each in units of its own training volatility and
conditioned on its own regimes and standardized log vol, before it fine-tunes on the target.
It is the default for a short single-asset history (:func:`pretraining`). The autoregressive model
trains on random crops of a pool of whole series (:func:`fit_series`; one series when
fine-tuning) and starts from a checkpoint pretrained so (:func:`read_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.conditions import WindowConditions
from synthfin.data.universe import bundled_universe
from synthfin.data.windows import WindowData
from synthfin.errors import ConfigError, DataError, ModelError
from synthfin.io import FileReading, atomic_directory, atomic_write_json
from synthfin.models.training import BatchOrder, TrainingLoop, autocast

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


# -- pooled series, for a likelihood model ------------------------------------------------------
class CropTraining(Protocol):
    """The settings :func:`fit_series` reads (``AutoregressiveConfig`` has them)."""

    crop: int
    burn_in: int
    batch_size: int
    seed: int
    lr: float
    weight_decay: float
    progress: bool
    epochs: int
    patience: int


@dataclasses.dataclass
class Series:
    """One contiguous history in scaled units: training inputs/targets and, for validation, the
    inputs/targets of the validation days after ``context`` training days."""

    x: torch.Tensor
    y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    val_from: int  # index in val_x of the first validation day


def split_series(x: torch.Tensor, y: torch.Tensor, n_train: int, context: int,
                 device: torch.device) -> Series:
    """A :class:`Series` from the inputs and targets of training days followed by validation
    days (T, ...): the first ``n_train`` train, validation reads the last ``context`` of them."""
    first = max(0, n_train - context)
    return Series(x[:n_train].to(device), y[:n_train].to(device),
                  x[first:].to(device), y[first:].to(device), n_train - first)


def validation_nll(net: nn.Module, series: list[Series]) -> float:
    """Negative log-likelihood per asset-day of every series' validation days (scaled units),
    each read after its training context; series of one shape are read as one batch."""
    was_training = net.training
    net.eval()
    groups: dict[tuple[int, ...], list[Series]] = {}
    for s in series:
        groups.setdefault((*s.val_y.shape, s.val_from), []).append(s)
    with torch.no_grad():
        total = sum(-net.log_prob(torch.stack([s.val_y for s in group]),
                                  torch.stack([s.val_x for s in group]))[:, key[-1]:].sum().item()
                    for key, group in groups.items())
    net.train(was_training)
    return total / sum((len(s.val_y) - s.val_from) * s.val_y.shape[1] for s in series)


def fit_series(net: nn.Module, series: list[Series], config: CropTraining,
               device: torch.device, run_dir: Path | None, resume: bool,
               phase: str) -> tuple[float, list[dict]]:
    """Maximum likelihood on random crops of every series, early stopping on the validation
    negative log-likelihood per asset-day; returns the best validation score and the loss
    history."""
    crop = min(config.crop, min(len(s.y) for s in series))
    burn_in = min(config.burn_in, crop // 2)
    starts = torch.cat([torch.stack([torch.full((len(s.y) - crop + 1,), i),
                                     torch.arange(len(s.y) - crop + 1)], dim=1)
                        for i, s in enumerate(series)])
    order = BatchOrder(len(starts), config.batch_size, config.seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)

    def step() -> dict[str, torch.Tensor]:
        picks = starts[next(order)]
        x = torch.stack([series[i].x[s:s + crop] for i, s in picks.tolist()])
        y = torch.stack([series[i].y[s:s + crop] for i, s in picks.tolist()])
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            nll = -net.log_prob(y, x)[:, burn_in:].mean()
        nll.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        return {"nll": nll.detach()}

    loop = TrainingLoop({"net": net}, {"net": optimizer}, run_dir=run_dir, resume=resume,
                        progress=config.progress, streams={"order": order})
    days = sum(len(s.y) for s in series)
    steps = max(8, math.ceil(days / (config.batch_size * (crop - burn_in))))
    best = loop.run(phase, config.epochs, step, steps,
                    validate=lambda: validation_nll(net, series), patience=config.patience)
    return best, loop.history


def save_checkpoint(out: str | Path, weights: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write a pretrained checkpoint folder: ``weights.safetensors`` and ``universe.json``."""
    with atomic_directory(out) as temp:
        save_file(weights, str(temp / "weights.safetensors"))
        atomic_write_json(temp / "universe.json", meta)
    return Path(out)


def read_checkpoint(folder: Path, sizes: dict[str, int]) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint written by :func:`save_checkpoint`, whose ``universe.json``
    must record ``sizes`` (the network's hyper-parameters)."""
    with FileReading(ModelError, "set pretrained: null to train from scratch") as reading:
        reading.file = folder / "universe.json"
        meta = json.loads(reading.file.read_text())
        reading.file = folder / "weights.safetensors"
        state = load_file(str(reading.file))
    theirs = {key: meta[key] for key in sizes}
    if theirs != sizes:
        raise ConfigError(f"pretrained checkpoint {folder} has {_listed(theirs)}, not "
                          f"{_listed(sizes)}; use its sizes or set pretrained: null to train "
                          "another size from scratch")
    return state


def _listed(sizes: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sizes.items())
