import json

import numpy as np
import pytest
import torch
from torch import nn

from synthfin.errors import ModelError
from synthfin.models import get_generator
from synthfin.models.training import (
    BatchOrder,
    TrainingLoop,
    load_module_state,
    module_state,
)


def regression_problem(seed: int = 0):
    """A linear regression on shuffled batches, with noise from the global torch generator."""
    torch.manual_seed(seed)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(256)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    order = BatchOrder(256, 32, seed)

    def step():
        idx = next(order)
        optimizer.zero_grad()
        jitter = 0.01 * torch.randn(len(idx))  # draws from the global generator
        loss = ((model(x[idx])[:, 0] - y[idx] - jitter) ** 2).mean()
        loss.backward()
        optimizer.step()
        return {"mse": loss.detach()}

    def validate():
        with torch.no_grad():
            return float(((model(x)[:, 0] - y) ** 2).mean())

    return model, optimizer, step, validate, order


def test_loop_decreases_the_loss_and_writes_history(tmp_path):
    model, optimizer, step, validate, _ = regression_problem()
    loop = TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path, progress=False)
    before = validate()
    best = loop.run("fit", 20, step, 8, validate=validate, patience=5)
    assert best < 0.05 * before
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[0]["phase"] == "fit" and "mse" in history[0] and "validation" in history[0]
    assert {p.name for p in tmp_path.iterdir()} >= {"checkpoint.safetensors", "best.safetensors",
                                                     "history.json"}


def test_resume_continues_exactly_where_a_killed_run_stopped(tmp_path):
    model, optimizer, step, _, order = regression_problem()
    TrainingLoop({"net": model}, {"net": optimizer}, progress=False).run("fit", 6, step, 5)
    straight = module_state({"net": model})

    model, optimizer, step, _, order = regression_problem()
    TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path, progress=False,
                 streams={"order": order}).run("fit", 3, step, 5)  # "killed" after 3 epochs
    torch.randn(7)  # whatever the process did next is forgotten
    model, optimizer, step, _, order = regression_problem()  # a new process
    loop = TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path, resume=True,
                        progress=False, streams={"order": order})
    loop.run("fit", 6, step, 5)
    resumed = module_state({"net": model})
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)
    assert [row["epoch"] for row in loop.history] == [1, 2, 3, 4, 5, 6]


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


def kill_after_epoch(monkeypatch, epoch: int) -> None:
    original = TrainingLoop._checkpoint

    def checkpoint_then_die(self, phase, best):
        original(self, phase, best)
        if self.completed(phase) == epoch:
            raise Killed

    monkeypatch.setattr(TrainingLoop, "_checkpoint", checkpoint_then_die)


@pytest.mark.parametrize("model, settings", [
    ("ar", {"hidden": 8, "layers": 1, "pretrained": None, "batch_size": 64,
            "stationary_days": 252}),
    ("cvae", {"hidden": 8, "latent_dim": 2, "batch_size": 64, "warmup_epochs": 3}),
])
def test_a_model_killed_after_epoch_2_and_resumed_equals_an_uninterrupted_one(
        model, settings, two_asset_windows, tmp_path, monkeypatch):
    def fit(**options):
        generator = get_generator(model)(epochs=5, patience=5, progress=False, device="cpu",
                                         **settings)
        return generator.fit(two_asset_windows, **options)

    straight = fit()
    with monkeypatch.context() as patch:
        kill_after_epoch(patch, 2)
        with pytest.raises(Killed):
            fit(run_dir=tmp_path)
    np.random.seed(99)  # a new process starts with other global random states
    torch.manual_seed(99)
    resumed = fit(run_dir=tmp_path, resume=True)
    for name, module in straight.modules_.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.modules_[name].state_dict()[key]), key
    assert resumed.history_ == straight.history_


def test_nan_loss_stops_with_a_clear_error_and_keeps_good_weights():
    model, optimizer, step, _, _ = regression_problem()
    loop = TrainingLoop({"net": model}, {"net": optimizer}, progress=False)
    loop.run("fit", 2, step, 4)
    good = module_state({"net": model})

    def bad_step():
        with torch.no_grad():
            model.weight.fill_(float("nan"))
        return {"mse": torch.tensor(float("nan"))}

    with pytest.raises(ModelError, match="non-finite loss in phase 'more'"):
        loop.run("more", 3, bad_step, 2)
    torch.testing.assert_close(module_state({"net": model}), good)


def test_state_round_trip_and_shape_mismatch_error():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    load_module_state({"m": b}, module_state({"m": a}))
    torch.testing.assert_close(b.weight, a.weight)
    with pytest.raises(ModelError, match="do not fit network 'm'"):
        load_module_state({"m": nn.Linear(4, 2)}, module_state({"m": a}))
