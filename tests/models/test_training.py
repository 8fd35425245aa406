import json

import pytest
import torch
from torch import nn

from synthfin.errors import ModelError
from synthfin.models.training import TrainingLoop, batches, load_module_state, module_state


def regression_problem(seed: int = 0, skip_batches: int = 0):
    """A linear regression; ``skip_batches`` replays the data order of a run that stopped."""
    torch.manual_seed(seed)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(256)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    order = batches(256, 32, torch.Generator().manual_seed(seed))
    for _ in range(skip_batches):
        next(order)

    def step():
        idx = next(order)
        optimizer.zero_grad()
        loss = ((model(x[idx])[:, 0] - y[idx]) ** 2).mean()
        loss.backward()
        optimizer.step()
        return {"mse": loss.detach()}

    def validate():
        with torch.no_grad():
            return float(((model(x)[:, 0] - y) ** 2).mean())

    return model, optimizer, step, validate


def test_loop_decreases_the_loss_and_writes_history(tmp_path):
    model, optimizer, step, validate = regression_problem()
    loop = TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path, progress=False)
    before = validate()
    best = loop.run("fit", 20, step, 8, validate=validate, patience=5)
    assert best < 0.05 * before
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[0]["phase"] == "fit" and "mse" in history[0] and "validation" in history[0]
    assert {p.name for p in tmp_path.iterdir()} >= {"checkpoint.safetensors", "checkpoint.json",
                                                     "best.safetensors", "history.json"}


def test_resume_continues_exactly_where_a_killed_run_stopped(tmp_path):
    model, optimizer, step, validate = regression_problem()
    TrainingLoop({"net": model}, {"net": optimizer}, progress=False).run("fit", 6, step, 4)
    straight = module_state({"net": model})

    model, optimizer, step, _ = regression_problem()
    TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path,
                 progress=False).run("fit", 3, step, 4)  # "killed" after 3 epochs
    model, optimizer, step, _ = regression_problem(skip_batches=3 * 4)  # a new process
    loop = TrainingLoop({"net": model}, {"net": optimizer}, run_dir=tmp_path, resume=True,
                        progress=False)
    loop.run("fit", 6, step, 4)
    resumed = module_state({"net": model})
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    assert [row["epoch"] for row in loop.history] == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_with_a_clear_error_and_keeps_good_weights():
    model, optimizer, step, _ = regression_problem()
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
