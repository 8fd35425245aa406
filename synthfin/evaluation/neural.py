"""Secondary, learned scores of TimeGAN (Yoon et al., 2019): discriminative and predictive.

Both train a small GRU. On daily returns they hardly separate iid noise from real data (a
classifier seldom beats chance on 64 noisy days), so they are reported beside the fact scores and
never used alone to rank generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class _GRUHead(nn.Module):
    """GRU over a window, a linear head on every step's hidden state."""

    def __init__(self, n_assets: int, hidden: int, out: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_assets, hidden, batch_first=True)
        self.head = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(x)  # (B, T, H)
        return self.head(hidden)  # (B, T, out)


@dataclass
class NeuralScoreConfig:
    """Small on purpose: the scores compare generators, they are not a model to tune."""

    hidden: int = 16
    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    max_windows: int = 1000
    repeats: int = 3


def _train(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn, *,
           config: NeuralScoreConfig, generator: torch.Generator) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    for _ in range(config.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for lo in range(0, len(inputs), config.batch_size):
            batch = order[lo:lo + config.batch_size]
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()


def _subsample(x: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    return x[rng.choice(len(x), min(keep, len(x)), replace=False)]


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0,
                         config: NeuralScoreConfig | None = None) -> tuple[float, float]:
    """``|accuracy - 0.5|`` of a GRU telling real from synthetic windows on a held-out 20 %.

    Returns the mean and standard deviation over ``config.repeats`` seeded repetitions (0 is
    indistinguishable, 0.5 perfectly separated). Windows are scaled by the real std per asset.
    """
    config = config or NeuralScoreConfig()
    scale = real.std(axis=(0, 1))
    results = []
    for repeat in range(config.repeats):
        rng = np.random.default_rng([seed, repeat])
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        n = min(len(real), len(synthetic), config.max_windows)
        x = np.concatenate([_subsample(real, n, rng), _subsample(synthetic, n, rng)]) / scale
        y = np.concatenate([np.ones(n), np.zeros(n)])
        order = rng.permutation(2 * n)
        cut = int(0.8 * 2 * n)
        inputs = torch.as_tensor(x[order], dtype=torch.float32)
        labels = torch.as_tensor(y[order], dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            model = _GRUHead(real.shape[2], config.hidden, 1)

        def last_step_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return nn.functional.binary_cross_entropy_with_logits(logits[:, -1, 0], target)

        _train(model, inputs[:cut], labels[:cut], last_step_loss, config=config,
               generator=torch_gen)
        with torch.no_grad():
            predicted = model(inputs[cut:])[:, -1, 0] > 0
        accuracy = (predicted == labels[cut:].bool()).float().mean().item()
        results.append(abs(accuracy - 0.5))
    return float(np.mean(results)), float(np.std(results))


def predictive_score(train_windows: np.ndarray, test_windows: np.ndarray, *, seed: int = 0,
                     config: NeuralScoreConfig | None = None) -> float:
    """Mean absolute error of one-step-ahead GRU forecasts on ``test_windows`` after training on
    ``train_windows`` (train on synthetic, test on real; train on real for the reference).

    Errors are in units of the test set's std per asset.
    """
    config = config or NeuralScoreConfig()
    rng = np.random.default_rng(seed)
    scale = test_windows.std(axis=(0, 1))
    train = torch.as_tensor(_subsample(train_windows, config.max_windows, rng) / scale,
                            dtype=torch.float32)
    test = torch.as_tensor(_subsample(test_windows, config.max_windows, rng) / scale,
                           dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        model = _GRUHead(train.shape[2], config.hidden, train.shape[2])
    _train(model, train[:, :-1], train[:, 1:], nn.functional.l1_loss, config=config,
           generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
    with torch.no_grad():
        return nn.functional.l1_loss(model(test[:, :-1]), test[:, 1:]).item()
