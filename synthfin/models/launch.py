"""Train a :class:`~synthfin.models.training.TorchGenerator` in ``nproc`` local processes: the
parent writes the data and the settings to a scratch folder, ``torchrun`` starts the ranks
(``python launch.py FOLDER``), rank 0 saves the fitted model there and the parent
reads its weights back."""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file

from synthfin import distributed
from synthfin.data.windows import WindowData
from synthfin.io import atomic_write_json

if TYPE_CHECKING:
    from synthfin.models.training import TorchGenerator


def fit_in_workers(generator: TorchGenerator, data: WindowData, run_dir: Path | None,
                   resume: bool) -> tuple[dict[str, np.ndarray], list[dict[str, Any]] | None]:
    """The learned state of ``generator`` fitted by ``generator.config.nproc`` ranks, and its
    loss history (``history_``)."""
    with tempfile.TemporaryDirectory(prefix="synthfin-train-") as scratch:
        job = Path(scratch)
        data.save(job / "data")
        atomic_write_json(job / "job.json", {
            "model": generator.name, "config": dataclasses.asdict(generator.config),
            "run_dir": None if run_dir is None else str(Path(run_dir).resolve()),
            "resume": resume})
        where = "" if run_dir is None else f" ({run_dir} holds the last good checkpoint)"
        distributed.torchrun(generator.config.nproc, [__file__, scratch],
                             f"training {generator.name}{where}")
        history = job / "history.json"
        return (load_file(str(job / "model" / "weights.safetensors")),
                json.loads(history.read_text()) if history.is_file() else None)


def main(job: Path) -> None:
    """One rank: fit the job's model on its data; rank 0 saves it into the job folder."""
    from synthfin.models import get_generator

    spec = json.loads((job / "job.json").read_text())
    generator = get_generator(spec["model"])(**spec["config"])
    generator.fit(WindowData.load(job / "data"), run_dir=spec["run_dir"], resume=spec["resume"])
    if distributed.is_main():
        generator.save(job / "model")
        if hasattr(generator, "history_"):
            atomic_write_json(job / "history.json", generator.history_)
    distributed.shutdown()


if __name__ == "__main__":
    distributed.run_rank(lambda: main(Path(sys.argv[1])))
