import numpy as np
import pandas as pd
import pytest

from synthfin.data.returns import log_returns, prices_from_returns
from synthfin.errors import DataError


def test_returns_to_prices_round_trip_is_exact(sp500_prices):
    returns = log_returns(sp500_prices)
    rebuilt = prices_from_returns(returns.to_numpy(), sp500_prices.iloc[0].to_numpy())
    np.testing.assert_allclose(rebuilt, sp500_prices.to_numpy(), rtol=1e-12)
    assert returns.index.equals(sp500_prices.index[1:])


def test_log_returns_match_direct_formula(sp500_prices):
    returns = log_returns(sp500_prices)["SP500"].to_numpy()
    close = sp500_prices["SP500"].to_numpy()
    # log(a) - log(b) vs log(a / b): equal to a few ulps of log(price) ~ 1e-15
    np.testing.assert_allclose(returns, np.log(close[1:] / close[:-1]), rtol=0, atol=1e-14)


def test_multi_asset_returns_use_the_common_date_range():
    index = pd.bdate_range("2020-01-01", periods=6)
    prices = pd.DataFrame({"A": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
                           "B": [np.nan, np.nan, 2.0, 2.2, 2.1, 2.3]}, index=index)
    returns = log_returns(prices)
    assert returns.index[0] == index[3] and len(returns) == 3
    np.testing.assert_allclose(returns["B"], np.log([2.2 / 2.0, 2.1 / 2.2, 2.3 / 2.1]))


def test_batched_paths_start_at_the_start_prices(rng):
    returns = rng.normal(0, 0.01, size=(5, 10, 2))
    paths = prices_from_returns(returns, np.array([100.0, 50.0]))
    assert paths.shape == (5, 11, 2)
    np.testing.assert_allclose(paths[:, 0], [[100.0, 50.0]] * 5)
    np.testing.assert_allclose(np.diff(np.log(paths), axis=1), returns, atol=1e-12)


def test_bad_inputs_raise_specific_errors():
    with pytest.raises(DataError, match="at least 2 dates"):
        log_returns(pd.DataFrame({"A": [1.0]}, index=pd.bdate_range("2020-01-01", periods=1)))
    with pytest.raises(DataError, match="positive"):
        prices_from_returns(np.zeros((3, 1)), -1.0)
