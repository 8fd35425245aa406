"""The generator contract's guarantees: settings checked when made, model folders written as a
unit and read back or refused with an error naming the file."""

import dataclasses
import os

import numpy as np
import pytest

from synthfin.errors import ConfigError, ModelError
from synthfin.models import Generator, GeneratorConfig, get_generator
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
