"""Shared fixtures: the bundled real S&P 500 data, prepared once per session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import WindowData, make_windows

# small recurrent nets run fastest on one thread, and two threads contend on a busy 2-core box
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sp500_prices() -> pd.DataFrame:
    return load_prices("bundled", ["SP500"])


@pytest.fixture(scope="session")
def sp500_returns(sp500_prices: pd.DataFrame) -> pd.DataFrame:
    return log_returns(sp500_prices)


@pytest.fixture(scope="session")
def sp500_windows(sp500_returns: pd.DataFrame) -> WindowData:
    """Bundled S&P 500, window 64, stride 1, default split: the data the evaluator is judged on."""
    return make_windows(sp500_returns, 64)


@pytest.fixture(scope="session")
def two_asset_windows() -> WindowData:
    prices = load_prices("bundled", ["JPM", "XOM"], start="2000-01-01")
    return make_windows(log_returns(prices), 32, stride=4)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
