import numpy as np
import pytest

from synthfin.data.conditions import RegimeModel, trailing_realized_vol
from synthfin.errors import DataError


def test_trailing_vol_uses_only_the_days_before(rng):
    returns = rng.normal(0, 0.01, size=(50, 2))
    vol = trailing_realized_vol(returns, 10)
    assert np.isnan(vol[:10]).all()
    for t in (10, 25, 49):
        direct = np.sqrt(252 / 10 * np.sum(returns[t - 10:t] ** 2, axis=0)).mean()
        assert vol[t] == pytest.approx(direct, rel=1e-12)


def test_regimes_split_training_vol_at_the_quantiles(rng):
    vol = rng.lognormal(size=10_000)
    model = RegimeModel((0.25, 0.75)).fit(vol)
    shares = np.bincount(model.label(vol), minlength=3) / len(vol)
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=1e-3)
    assert np.all(np.diff(model.median_vol_) > 0)


def test_unknown_regime_names_the_known_ones(rng):
    model = RegimeModel().fit(rng.lognormal(size=100))
    assert model.code("stressed") == 2
    with pytest.raises(DataError, match="calm, normal, stressed"):
        model.code("panic")


def test_bad_quantiles_are_rejected():
    with pytest.raises(DataError, match="increase"):
        RegimeModel((0.8, 0.2))
    with pytest.raises(DataError, match="need 2 quantiles"):
        RegimeModel((0.5,))


def test_window_conditions_standardize_draw_and_round_trip(rng):
    from synthfin.data.conditions import WindowConditions

    vols = rng.lognormal(-2, 0.5, size=500)
    regimes = RegimeModel().fit(vols).label(vols)
    conditions = WindowConditions(regimes, vols)
    standardized = conditions.standardize(vols)
    assert abs(standardized.mean()) < 1e-12 and abs(standardized.std() - 1) < 1e-12
    codes, drawn = conditions.draw(300, 2, np.random.default_rng(0))
    assert (codes == 2).all() and np.isin(drawn, vols[regimes == 2]).all()
    clone = WindowConditions.from_arrays(conditions.to_arrays())
    np.testing.assert_array_equal(clone.standardize(vols), standardized)
    with pytest.raises(DataError, match="no training window is in regime 5"):
        conditions.draw(3, 5, np.random.default_rng(0))
