import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import synthfin as sf
from synthfin.errors import DataError
from synthfin.scenarios.ohlcv import FIELDS
from synthfin.scenarios.paths import Scenarios, Shock

# tiny trainings: each generator fits in about a second on the 2015-2022 S&P 500
TINY = {
    "ar": dict(hidden=8, layers=1, pretrained=None, epochs=1, stationary_days=252,
               progress=False),
    "cvae": dict(epochs=1, hidden=8, latent_dim=2, batch_size=512, pretrain_epochs=0,
                 progress=False, device="cpu"),
    "timegan": dict(hidden=8, z_dim=4, batch_size=32, steps_per_epoch=5, autoencoder_epochs=1,
                    supervisor_epochs=1, epochs=1, validation_samples=32, patience=100,
                    progress=False, device="cpu"),
    "garch": {}, "bootstrap": {}, "gaussian": {},
}


@pytest.fixture(scope="module")
def garch(sp500_prices):
    return sf.Synthesizer("garch", window_len=32).fit(sp500_prices.loc["2015":])


@pytest.fixture(scope="module")
def two_assets():
    prices = sf.load_prices("bundled", ["JPM", "XOM"], start="2015-01-01")
    return sf.Synthesizer("gaussian", window_len=16).fit(prices).sample(4, 20, seed=0)


@pytest.mark.filterwarnings("ignore:timegan looks collapsed")  # one-epoch training
@pytest.mark.parametrize("model", sorted(TINY))
def test_every_generator_gives_ordered_ohlcv_frames(model, sp500_prices):
    synth = sf.Synthesizer(model, window_len=16, stride=8, **TINY[model])
    scen = synth.fit(sp500_prices.loc["2015":]).sample(6, 40, regime="stressed", seed=0)
    for frame, prices in zip(scen.frames(ohlcv=True), scen.prices(), strict=True):
        assert list(frame.columns) == list(FIELDS)
        assert frame.index.equals(scen.price_dates) and len(frame) == 41
        np.testing.assert_allclose(frame["Close"], prices[:, 0])
        assert (frame["Low"] <= frame[["Open", "Close"]].min(axis=1)).all()
        assert (frame[["Open", "Close"]].max(axis=1) <= frame["High"]).all()
        assert (frame["Volume"] > 0).all()


def test_dates_follow_the_exchange_and_start_on_the_last_real_day(garch, sp500_prices):
    scen = garch.sample(3, 200, seed=0)
    assert scen.start_date == sp500_prices.index[-1] == pd.Timestamp("2022-12-28")
    assert pd.Timestamp("2023-07-04") not in scen.dates          # NYSE holiday
    assert scen.dates.freq is None
    assert len(scen.price_dates) == scen.prices().shape[1] == 201
    assert scen.price_dates[0] == scen.start_date and scen.price_dates[1:].equals(scen.dates)
    business = garch.sample(3, 200, seed=0, calendar="business")
    assert pd.Timestamp("2023-07-04") in business.dates
    assert garch.sample(2, 5, seed=0, start_price=1.0).prices()[:, 0, 0].tolist() == [1.0, 1.0]


def test_frames_round_trip_to_wide(garch, two_assets):
    scen = garch.sample(5, 30, seed=1)
    frames = list(scen.frames(ohlcv=True))
    for field in FIELDS:
        values = "price" if field == "Close" else field.lower()
        joined = pd.concat({i: f[field] for i, f in enumerate(frames)}, axis=1)
        np.testing.assert_array_equal(joined.to_numpy(), scen.to_wide(values).to_numpy())
    assert scen.to_wide().index.equals(scen.price_dates)
    closes = pd.concat({i: f["SP500"] for i, f in enumerate(scen.frames(ohlcv=False))}, axis=1)
    pd.testing.assert_frame_equal(closes, scen.to_wide(), check_names=False,
                                  check_column_type=False)
    wide = two_assets.to_wide("simple_return")
    assert wide.columns.names == ["path", "asset"] and wide.index.equals(two_assets.dates)
    np.testing.assert_allclose(wide[(2, "XOM")], np.expm1(two_assets.returns[2, :, 1]))
    frame = next(two_assets.frames(ohlcv=True))
    assert frame.columns.names == ["asset", "field"] and frame.shape == (21, 10)
    np.testing.assert_allclose(frame[("JPM", "Close")], two_assets.to_wide()[(0, "JPM")])
    with pytest.raises(DataError, match="values must be one of"):
        scen.to_wide("adj_close")


def test_simple_and_log_returns_on_request(garch):
    scen = garch.sample(2, 10, seed=0)
    log, simple = scen.to_frame(), scen.to_frame(returns="simple")
    np.testing.assert_allclose(simple["return"], np.expm1(log["return"]))
    prices = scen.to_wide()
    np.testing.assert_allclose(scen.to_wide("simple_return"), prices.pct_change().iloc[1:])


def test_slicing_and_concat_keep_dates_metadata_and_bars(garch):
    crash = garch.crash(10, 30, shock=-0.1, shock_day=4, seed=0).with_ohlcv(seed=0)
    assert crash.shock == Shock((-0.1,), 4) and crash.regime == "crash"
    for part, expected in ((crash[:4], np.arange(4)), (crash[2], [2]),
                           (crash[crash.returns[:, 5, 0] > 0],
                            np.flatnonzero(crash.returns[:, 5, 0] > 0))):
        np.testing.assert_array_equal(part.returns, crash.returns[expected])
        np.testing.assert_array_equal(part.bars, crash.bars[expected])
        assert part.dates.equals(crash.dates) and part.start_date == crash.start_date
        assert (part.shock, part.regime) == (crash.shock, crash.regime)
    joined = Scenarios.concat([crash[:3], crash[3:]])
    np.testing.assert_array_equal(joined.returns, crash.returns)
    np.testing.assert_array_equal(joined.bars, crash.bars)
    assert joined.shock == crash.shock and joined.dates.equals(crash.dates)
    with pytest.raises(DataError, match="different regime"):
        Scenarios.concat([crash, garch.sample(2, 30, seed=0)])
    with pytest.raises(DataError, match="only some have bars"):
        Scenarios.concat([crash, dataclasses.replace(crash, bars=None)])


def test_crash_metadata_survives_save_and_parquet(garch, tmp_path):
    crash = garch.crash(4, 20, shock=-0.07, shock_day=2, seed=0).with_ohlcv(seed=3)
    loaded = Scenarios.load(crash.save(tmp_path / "crash.safetensors"))
    np.testing.assert_array_equal(loaded.returns, crash.returns)
    np.testing.assert_array_equal(loaded.bars, crash.bars)
    assert loaded.dates.equals(crash.dates) and loaded.metadata() == crash.metadata()
    assert crash.metadata()["shock"] == {"size": [-0.07], "day": 2,
                                         "date": str(crash.dates[2].date())}
    stored = pd.read_parquet(crash.to_parquet(tmp_path / "crash.parquet")).attrs["synthfin"]
    assert json.loads(stored)["shock"]["day"] == 2
    (tmp_path / "other.safetensors").write_bytes(b"not a file")
    with pytest.raises(DataError, match="other.safetensors is damaged"):
        Scenarios.load(tmp_path / "other.safetensors")
    with pytest.raises(DataError, match="missing.safetensors does not exist"):
        Scenarios.load(tmp_path / "missing.safetensors")


def test_bad_scenarios_are_clear_errors(garch):
    scen = garch.sample(2, 5, seed=0)
    with pytest.raises(DataError, match="start prices must be positive"):
        dataclasses.replace(scen, start_prices=np.array([-1.0]))
    with pytest.raises(DataError, match="start_date"):
        dataclasses.replace(scen, start_date=scen.dates[1])
    with pytest.raises(DataError, match="at least one"):
        Scenarios.concat([])


def test_bars_of_a_stock_fitted_on_its_bars_trade_its_own_volume():
    close = sf.load_prices("bundled", ["JPM"], start="2015-01-01")["JPM"]
    volume = np.full(len(close), 1.2e7)  # a stock's shares a day, not the index's billions
    bars = pd.DataFrame({"Date": close.index, "Open": close, "High": close * 1.01,
                         "Low": close * 0.99, "Close": close, "Adj Close": close,
                         "Volume": volume}).reset_index(drop=True)
    synth = sf.Synthesizer("gaussian", window_len=16).fit(bars)
    np.testing.assert_allclose(synth.volume_level_, [1.2e7])
    frame = next(synth.sample(5, 60, seed=0).frames())
    assert 1e6 < frame["Volume"].median() < 1e8
    index_level = next(sf.Synthesizer("gaussian", window_len=16).fit(close.to_frame())
                       .sample(5, 60, seed=0).frames())["Volume"].median()
    assert index_level > 1e9  # without bars: the documented S&P 500 level
    from_series = sf.Synthesizer("gaussian", window_len=16).fit(
        close.to_frame(), volume=pd.Series(volume, index=close.index, name="Volume"))
    np.testing.assert_allclose(from_series.volume_level_, [1.2e7])
    no_volume = sf.Synthesizer("gaussian", window_len=16).fit(bars.assign(Volume=0.0))
    assert no_volume.volume_level_ is None  # zeros, as Yahoo gives for FX: the default level
    with pytest.raises(sf.DataError, match="volume has no column for JPM"):
        sf.Synthesizer("gaussian").fit(close.to_frame(), volume=pd.DataFrame({"XOM": volume},
                                                                            index=close.index))
