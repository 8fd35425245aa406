"""Data-parallel training on CPU with gloo and two processes (forked, so they start fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
import torch
from forked_ranks import launch
from torch import nn

from synthfin import distributed
from synthfin.models import Generator, get_generator
from synthfin.models.training import TrainingLoop

UNIT_ROUNDOFF = 2.0 ** -24  # float32


def _gamma(n: int) -> float:
    """Higham's bound on the relative error of a float32 sum of n + 1 terms."""
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def test_two_ranks_train_the_weights_of_one_process_on_the_same_global_batch(
        tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    worker.main(tmp_path / "one")  # no torchrun environment: a single process
    assert launch(tmp_path / "two", lambda: worker.main(tmp_path / "two")) == [0, 0]
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    # The runs differ only in the order of float32 sums: the batch mean of the per-sample
    # gradients (B terms, plus the all_reduce: gamma_{B+1} * max|g_i|), each sample's forward
    # dot product (gamma_{D+1} * sum|w_j x_j|, times 2 max|x| in its gradient) and the rounding
    # of the update (2u(|w| + lr|g|)). SGD on this least-squares problem does not amplify an
    # error (lr * lambda_max(H) < 2, checked below), so the per-step bounds add up; the
    # component-wise bound becomes a 2-norm bound with sqrt(D + 1).
    x, _ = worker.data()
    features = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    lambda_max = float(torch.linalg.eigvalsh(2 * features.T @ features / worker.BATCH).max())
    assert worker.LR * lambda_max < 2
    for name in ("net", "critic"):
        weights = one["weights"][name]
        bound = sum(worker.LR * (_gamma(worker.BATCH + 1) * gradient + _gamma(worker.DIM + 1)
                                 * forward)
                    + 2 * UNIT_ROUNDOFF * (max(map(abs, weights)) + worker.LR * gradient)
                    for gradient, forward in one["records"][name]["bound_terms"])
        tolerance = math.sqrt(worker.DIM + 1) * bound
        difference = float(torch.linalg.vector_norm(torch.tensor(weights)
                                                    - torch.tensor(two["weights"][name])))
        print(f"{name}: difference {difference:.3g}, tolerance {tolerance:.3g}")
        assert difference <= tolerance, (name, difference, tolerance)
    # The gated critic decided alike: on the global batch loss (batch_mean), as one process.
    # (Its losses sit far from the gate compared with float32 rounding, so no decision is a tie.)
    gate = worker.CRITIC_GATE
    alone, both = (np.array(r["records"]["critic"]["losses"]) for r in (one, two))
    assert np.abs(alone - gate).min() > 1e-3 * gate
    assert np.array_equal(alone > gate, both > gate)
    assert 0 < (alone > gate).sum() < len(alone)  # it stepped some times, not all
    # the checkpoint rank 0 wrote loads in a single process, with the final weights
    nets = {name: nn.Linear(worker.DIM, 1) for name in ("net", "critic")}
    loop = TrainingLoop(nets, {name: torch.optim.SGD(net.parameters(), lr=0.1)
                               for name, net in nets.items()},
                        run_dir=tmp_path / "two" / "run", resume=True, progress=False)
    assert loop.completed("fit") == worker.EPOCHS
    for name, net in nets.items():
        assert torch.cat([net.weight[0], net.bias]).tolist() == two["weights"][name]
    assert [row["epoch"] for row in two["history"]] == [1, 2, 3]


def test_a_killed_rank_fails_the_job_clearly_and_keeps_the_last_good_checkpoint(
        tmp_path: Path) -> None:
    kill_step = worker.STEPS * 2 + 1  # rank 1 dies during the third epoch
    codes = launch(tmp_path, lambda: worker.main(tmp_path, 1, kill_step))
    assert codes[1] == -9 and codes[0] == 1
    message = (tmp_path / "error0.txt").read_text()
    assert "another rank died" in message
    assert "holds the last good checkpoint" in message and str(tmp_path / "run") in message
    nets = {name: nn.Linear(worker.DIM, 1) for name in ("net", "critic")}
    loop = TrainingLoop(nets, {name: torch.optim.SGD(net.parameters(), lr=0.1)
                               for name, net in nets.items()},
                        run_dir=tmp_path / "run", resume=True, progress=False)
    assert loop.completed("fit") == 2  # the two finished epochs, nothing of the third


def test_a_rank_killed_and_resumed_ends_bit_identical_to_an_uninterrupted_run(
        tmp_path: Path) -> None:
    # each rank adds noise from its own global stream: a resume that re-derived rank 1's
    # stream instead of restoring it would train on other noise from epoch 3 on
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    assert launch(whole, lambda: worker.main(whole, noise=0.5)) == [0, 0]
    codes = launch(killed, lambda: worker.main(killed, 1, worker.STEPS * 2 + 1, noise=0.5))
    assert codes[1] == -9
    assert launch(killed, lambda: worker.main(killed, noise=0.5, resume=True)) == [0, 0]
    one, two = (json.loads((folder / "result.json").read_text()) for folder in (whole, killed))
    assert two["weights"] == one["weights"]
    assert two["history"] == one["history"]
    assert json.loads((killed / "run" / "history.json").read_text()) == one["history"]


def test_local_slices_cover_the_global_batch_once() -> None:
    assert not distributed.active()
    batch = torch.arange(10)
    assert torch.equal(distributed.local_slice(batch), batch)  # one process: all of it


def test_ranks_that_decide_on_their_own_loss_are_stopped(tmp_path: Path) -> None:
    codes = launch(tmp_path, lambda: worker.main(tmp_path, local_gate=True))
    assert codes == [1, 1]
    assert "weights diverged" in (tmp_path / "error0.txt").read_text()


def test_a_neural_model_trains_in_two_ranks_and_loads_in_one(tmp_path: Path,
                                                           two_asset_windows) -> None:
    settings = {"epochs": 2, "hidden": 8, "layers": 1, "pretrained": None, "progress": False,
                "batch_size": 32, "stationary_days": 252}

    def fit() -> None:
        torch.set_num_threads(1)
        model = get_generator("ar")(**settings).fit(two_asset_windows,
                                                    run_dir=tmp_path / "run")
        if distributed.is_main():
            model.save(tmp_path / "model")
        distributed.shutdown()

    assert launch(tmp_path, fit) == [0, 0]
    loaded = Generator.load(tmp_path / "model")  # this process has no process group
    assert not distributed.active()
    assert loaded.sample(4, seed=0).shape == (4, two_asset_windows.window_len, 2)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    # two ranks each take half of every global batch and average gradients: the same optimizer
    # steps as one process, up to float32 reduction order
    torch.set_num_threads(1)
    alone = get_generator("ar")(**settings).fit(two_asset_windows)
    for ranks, one in zip(history, alone.history_, strict=True):
        for key in ("nll", "validation"):
            assert ranks[key] == pytest.approx(one[key], rel=1e-4), key


def test_the_pipeline_distributed_block_sets_nproc_of_neural_models_only() -> None:
    from synthfin.jobs.config import PipelineConfig

    config = PipelineConfig(name="x", distributed={"nproc": 3}, models={
        "ar": {}, "big": {"model": "cvae", "nproc": 2}, "garch": {}})
    assert config.models["ar"]["nproc"] == 3
    assert config.models["big"]["nproc"] == 2  # the model's own setting wins
    assert "nproc" not in config.models["garch"]
    assert "nproc" not in PipelineConfig(name="x", models={"ar": {}}).models["ar"]


@pytest.mark.slow
def test_torchrun_trains_resumes_and_samples_from_the_command_line(tmp_path: Path,
                                                                   two_asset_windows) -> None:
    """The real launcher (``torchrun --standalone``, about a minute on 2 cores)."""
    from typer.testing import CliRunner

    from synthfin.cli import app
    from synthfin.jobs.shards import read_manifest

    two_asset_windows.save(tmp_path / "data")
    train = ["train", "--model", "ar", "--data", tmp_path / "data", "--out", tmp_path / "ar",
             "--nproc", 2, "--set", "hidden=8", "--set", "layers=1", "--set", "progress=false",
             "--set", "pretrained=null", "--set", "stationary_days=252"]
    for epochs, resume in ((1, []), (2, ["--resume"])):
        result = CliRunner().invoke(app, [*map(str, train), "--set", f"epochs={epochs}",
                                          *resume])
        assert result.exit_code == 0, result.output
    history = json.loads((tmp_path / "ar" / "training" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]  # the second run continued the first
    hashes = []
    for nproc in (1, 2):
        out = tmp_path / f"paths-{nproc}"
        result = CliRunner().invoke(app, list(map(str, [
            "sample", "--model-dir", tmp_path / "ar", "--out", out, "--n", 30, "--shard-size",
            8, "--nproc", nproc])))
        assert result.exit_code == 0, result.output
        hashes.append([record["sha256"] for record in read_manifest(out)["shards"]])
    assert hashes[0] == hashes[1] and len(hashes[0]) == 4
