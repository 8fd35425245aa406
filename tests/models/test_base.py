"""The generator contract's guarantees: settings checked when made, model folders written as a
unit and read back or refused with an error naming the file."""

import dataclasses
import os
import warnings

import numpy as np
import pytest

from synthfin.errors import ConfigError, ModelError
from synthfin.models import Generator, GeneratorConfig, get_generator
from synthfin.models.base import implausible_paths
from synthfin.models.baselines import BlockBootstrap


@dataclasses.dataclass
class ToyConfig(GeneratorConfig):
    rate: float = 0.5
    steps: int = 3
    name: str = "a"
    flag: bool = False
    limits = {"rate": "> 0", "steps": ">= 1", "name": ("a", "b")}


def test_settings_are_checked_for_type_and_range_when_made():
    assert ToyConfig(rate=2).rate == 2.0 and isinstance(ToyConfig(rate=2).rate, float)
    for bad, message in [({"rate": "x"}, "rate='x' must be a number"),
                         ({"rate": 0.0}, "rate=0.0 must be > 0"),
                         ({"steps": 2.5}, "steps=2.5 must be an integer"),
                         ({"steps": True}, "steps=True must be an integer"),
                         ({"name": "c"}, "name='c' must be one of a, b"),
                         ({"flag": "yes"}, "flag='yes' must be true/false"),
                         ({"seed": -1}, "seed=-1 must be >= 0")]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            ToyConfig(**bad)


@pytest.mark.parametrize("model", ["ar", "cvae", "timegan", "garch", "bootstrap", "gaussian"])
def test_every_registered_model_rejects_a_wrong_type_naming_model_and_setting(model):
    assert get_generator(model)().config.seed == 0
    with pytest.raises(ConfigError, match=f"model '{model}': setting seed='x' must be"):
        get_generator(model)(seed="x")


class Killed(Exception):
    pass


def bootstrap(data, block_len: float) -> BlockBootstrap:
    return BlockBootstrap(block_len=block_len).fit(data)


def same_model(a: Generator, b: Generator) -> bool:
    return a.config == b.config and all(np.array_equal(a._state()[k], v)
                                        for k, v in b._state().items())


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_model(two_asset_windows, tmp_path,
                                                                     monkeypatch):
    old, new = bootstrap(two_asset_windows, 5.0), bootstrap(two_asset_windows, 9.0)
    real_replace, calls = os.replace, {"n": 0, "kill_at": -1}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    outcomes = []
    for kill_at in range(1, 20):
        folder = tmp_path / f"k{kill_at}" / "model"
        old.save(folder)
        (folder / "training").mkdir()  # something else in the folder, kept across saves
        calls.update(n=0, kill_at=kill_at)
        try:
            new.save(folder)
            finished = True
        except Killed:
            finished = False
        calls["kill_at"] = -1
        loaded = Generator.load(folder)
        assert same_model(loaded, old) or same_model(loaded, new), kill_at
        outcomes.append("new" if same_model(loaded, new) else "old")
        assert (folder / "training").is_dir()
        assert [p.name for p in folder.parent.iterdir()] == ["model"]  # leftovers cleaned
        if finished:
            break
    assert outcomes[0] == "old" and outcomes[-1] == "new" and finished


def test_an_architecture_mismatch_is_one_line_naming_the_file(two_asset_windows, tmp_path):
    ar = get_generator("ar")(epochs=1, hidden=4, layers=1, pretrained=None, progress=False,
                             stationary_days=252, device="cpu").fit(two_asset_windows)
    ar.save(tmp_path / "ar")
    config = tmp_path / "ar" / "config.json"
    config.write_text(config.read_text().replace('"hidden": 4', '"hidden": 8'))
    with pytest.raises(ModelError) as caught:
        Generator.load(tmp_path / "ar")
    message = str(caught.value)
    assert "\n" not in message and "weights.safetensors" in message
    assert "size mismatch" in message and "config.json" in message


def test_implausible_paths_are_those_beyond_one_or_25_long_run_sds_or_not_finite():
    returns = np.zeros((5, 3, 2))
    returns[1, 2, 0] = 0.26  # 26 sds of 0.01
    returns[2, 0, 1] = 0.99  # within 25 sds of 0.5, below 1
    returns[3, 1, 1] = -1.01  # beyond 1 whatever the sd
    returns[4, 0, 0] = np.nan
    assert implausible_paths(returns, np.array([0.01, 0.5])).tolist() == [
        False, True, False, True, True]


def test_sample_and_every_chunking_warn_once_with_the_count_of_implausible_paths(
        two_asset_windows):
    from synthfin.errors import ImplausiblePathsWarning
    from synthfin.models.baselines import GaussianGenerator

    model = GaussianGenerator().fit(two_asset_windows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plausible model warns of nothing
        model.sample_returns(200, seed=0)
    model.moments_[:, 1:] *= 8.0  # 8 sds a day: some paths pass 25 sds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = model.sample_returns(200, seed=0)
    expected = int(implausible_paths(drawn, model.spec_.scaler.std_).sum())
    assert 0 < expected < 200
    for chunk_size in (None, 64):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            list(model.sample_chunks(200, seed=0, chunk_size=chunk_size))
        assert [type(w.message) for w in caught] == [ImplausiblePathsWarning]
        assert f"gaussian sample: {expected} of 200 paths" in str(caught[0].message)
