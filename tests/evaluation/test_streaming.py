"""Streaming pooled facts equal the in-memory ones (fact_statistics) on a small case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthfin.errors import DataError
from synthfin.evaluation.streaming import StreamingFacts
from synthfin.stats import fact_statistics

FLOAT64 = np.finfo(float).eps
EXACT = {"acf_r", "acf_abs", "acf_abs_within", "acf_sq", "leverage", "skewness", "kurtosis",
         "agg_kurtosis", "vol_level", "cross_corr"}


def _paths(n: int = 300, length: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_t(4, size=(n, length, 2)) * 0.01 + 3e-4
    x[:, :, 1] += 0.5 * x[:, :, 0]
    x[:5, :3, 0] = 0.0  # zeros are neither losses nor gains
    return x


def _check(streamed: dict[str, np.ndarray], x: np.ndarray, bins_per_decade: int) -> None:
    expected = fact_statistics(x)
    assert streamed.keys() == expected.keys()
    # Sums of the same N = n L terms in another order (and through an FFT, O(log L) more):
    # each fact is a ratio of a few such sums, so it moves by a few gamma_N ~ N eps at most.
    bound = x.shape[0] * x.shape[1] * FLOAT64
    for name in EXACT & expected.keys():
        np.testing.assert_allclose(streamed[name], expected[name], rtol=bound, atol=bound,
                                   err_msg=name)
    # A histogram quantile lies within one bin of each of the two order statistics np.quantile
    # interpolates: two relative bin widths of the raw quantile, in units of the std.
    width = 10 ** (1 / bins_per_decade) - 1
    days = x.reshape(-1, x.shape[2])
    for asset in range(x.shape[2]):
        tails = streamed["tails"][4 * asset:4 * asset + 4]
        raw = np.abs(tails * days[:, asset].std() + days[:, asset].mean())
        assert np.all(np.abs(tails - expected["tails"][4 * asset:4 * asset + 4])
                      <= 2 * width * raw / days[:, asset].std()), asset
    # Hill: the partial bin's mean log and the (k+1)-th log are each within one log-width w,
    # so 1/alpha moves by at most d = 2w and alpha by at most alpha^2 d / (1 - alpha d).
    change = 2 * math.log(10) / bins_per_decade
    hill = expected["hill"]
    assert np.all(np.abs(streamed["hill"] - hill) <= hill ** 2 * change / (1 - hill * change))


@pytest.mark.parametrize("bins_per_decade", [10_000, 500])
def test_streamed_facts_equal_the_in_memory_ones(bins_per_decade: int) -> None:
    x = _paths()
    streaming = StreamingFacts(64, 2, bins_per_decade=bins_per_decade)
    for lo, hi in [(0, 1), (1, 71), (71, 200), (200, 300)]:  # uneven chunks
        streaming.update(x[lo:hi])
    _check(streaming.statistics(), x, bins_per_decade)


def test_one_asset_short_windows() -> None:
    x = _paths(n=50, length=6)[:, :, :1]
    streaming = StreamingFacts(6, 1)
    streaming.update(x[:20])
    streaming.update(x[20:])
    _check(streaming.statistics(), x, 10_000)


def test_a_path_of_zeros_is_left_out_of_acf_abs_within_as_in_memory() -> None:
    """Its level is 0, so its relative |r| is undefined: both forms leave the path out."""
    x = _paths(n=40)
    x[[3, 17], :, 0] = 0.0
    streaming = StreamingFacts(64, 2)
    streaming.update(x[:10])
    streaming.update(x[10:])
    bound = x.shape[0] * x.shape[1] * FLOAT64
    np.testing.assert_allclose(streaming.statistics()["acf_abs_within"],
                               fact_statistics(x)["acf_abs_within"], rtol=bound, atol=bound)


def test_paths_of_another_shape_are_refused() -> None:
    streaming = StreamingFacts(64, 2)
    with pytest.raises(DataError, match=r"\(k, 64, 2\)"):
        streaming.update(np.zeros((3, 32, 2)))
    with pytest.raises(DataError, match="no paths"):
        streaming.statistics()
