"""Run a pipeline: data -> one model per entry -> samples -> evaluation, in a run directory.

Each stage writes its outputs, then ``stage.json`` holding the hash of its inputs and the SHA-256
of every output file (as DVC does). A re-run reuses every stage whose inputs did not change and
whose outputs are all still there, unchanged (editing one model's settings retrains that model
only; a deleted or damaged output reruns its stage); a stage killed by Ctrl-C or an error has no
``stage.json``, so it alone runs again, and a neural model resumes from its training checkpoint
exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthfin.data.conditions import TRADING_DAYS
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import WindowData
from synthfin.evaluation.evaluate import evaluate_windows
from synthfin.io import atomic_save_npy, atomic_write_json, file_sha256, finite_json, output_lock
from synthfin.jobs.config import DataConfig, PipelineConfig
from synthfin.models import Generator, get_generator
from synthfin.models.base import implausible_note, implausible_paths
from synthfin.models.training import CHECKPOINT, progress_lines

logger = logging.getLogger("synthfin.jobs.pipeline")


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class RunResult:
    """What a pipeline run produced: its directory, the headline table, the evaluator's
    warnings and per-stage timings (``reused`` when a stage's inputs had not changed)."""

    run_dir: Path
    summary: pd.DataFrame
    warnings: list[str]
    stages: list[dict[str, Any]]


def prepare_data(config: DataConfig) -> WindowData:
    """Prices -> log returns -> windows, as a pipeline's ``data:`` section (or ``synthfin
    prepare``) says."""
    prices = load_prices(config.source, config.tickers, config.start, config.end,
                         cache_dir=config.cache_dir, fill_gaps=config.fill_gaps)
    return config.make_windows(log_returns(prices))


def model_settings(run_name: str, settings: dict[str, Any], *, seed: int, device: str
                   ) -> tuple[type[Generator], dict[str, Any]]:
    """The generator class of a ``models:`` entry and its settings, with the pipeline's seed
    and (for neural models) device filled in where the entry does not set them."""
    settings = dict(settings)
    model_cls = get_generator(settings.pop("model", run_name))
    settings.setdefault("seed", seed)
    if "device" in {f.name for f in dataclasses.fields(model_cls.config_class)}:
        settings.setdefault("device", device)
    return model_cls, settings


class _Stage:
    """A directory whose ``stage.json`` records the input hash it was completed for and the
    SHA-256 of each output file in it (except ``stage.json`` and the ``scratch`` subfolder,
    such as a model's ``training/`` checkpoints). It is done while both still hold."""

    def __init__(self, directory: Path, key: str, scratch: str | None = None) -> None:
        self.directory, self.key, self.scratch = directory, key, scratch

    def _outputs(self) -> dict[str, str]:
        files = sorted(path for path in self.directory.rglob("*") if path.is_file())
        return {path.relative_to(self.directory).as_posix(): file_sha256(path) for path in files
                if path.name != "stage.json" and not path.name.startswith(".")
                and path.relative_to(self.directory).parts[0] != self.scratch}

    @property
    def done(self) -> bool:
        try:
            marker = json.loads((self.directory / "stage.json").read_text())
        except (OSError, ValueError):  # missing or damaged: not done
            return False
        if not isinstance(marker, dict) or marker.get("key") != self.key:
            return False
        outputs = marker.get("outputs")
        if not isinstance(outputs, dict) or not outputs:
            return False
        for name, digest in outputs.items():
            path = self.directory / name
            if not path.is_file() or file_sha256(path) != digest:
                logger.info("%s changed or missing: its stage runs again", path)
                return False
        return True

    def complete(self, seconds: float) -> None:
        atomic_write_json(self.directory / "stage.json", {
            "key": self.key, "seconds": seconds, "outputs": self._outputs()})


class Pipeline:
    """Stages of a validated :class:`PipelineConfig` in ``config.output_dir``."""

    def __init__(self, config: PipelineConfig, *,
                 progress: Callable[[str], object] | None = None) -> None:
        self.config = config
        self.run_dir = config.output_dir
        self.stages: list[dict[str, Any]] = []
        self.progress = progress or (lambda line: None)  # told when each stage starts and ends

    def run(self) -> RunResult:
        """Every stage, holding the run directory's lock (:func:`~synthfin.io.output_lock`):
        a second run on the same directory fails at once, naming this one."""
        with output_lock(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json",
                              self.config.model_dump(mode="json", by_alias=True))
            data, data_key = self._data()
            sample_keys, samples = {}, {}
            for run_name, settings in self.config.models.items():
                model, model_key = self._model(run_name, settings, data, data_key)
                samples[run_name], sample_keys[run_name] = self._samples(run_name, model,
                                                                         model_key)
            summary, warnings = self._evaluate(data, samples, sample_keys)
            warnings = [*self._implausible(data, samples), *warnings]
            atomic_write_json(self.run_dir / "stages.json", self.stages)
        return RunResult(self.run_dir, summary, warnings, self.stages)

    @staticmethod
    def _implausible(data: WindowData, samples: dict[str, np.ndarray]) -> list[str]:
        """One message per model whose whole paths (the report reads their first window)
        hold a day beyond the plausibility bound."""
        long_run_sd = data.scaler.std_
        counts = {name: int(implausible_paths(x, long_run_sd).sum())
                  for name, x in samples.items()}
        return ["IMPLAUSIBLE: " + implausible_note(count, len(samples[name]),
                                                   f"samples {name!r} (whole paths)")
                for name, count in counts.items() if count]

    def _timed(self, name: str, stage: _Stage, work) -> Any:
        reused = stage.done
        if not reused:
            self.progress(f"{name}: running")
        start = time.perf_counter()
        with progress_lines(lambda line: self.progress(f"{name}: {line}")):
            result = work(reused)  # epochs and other long steps report as they go
        seconds = time.perf_counter() - start
        if not reused:
            stage.complete(seconds)
        self.stages.append({"stage": name, "reused": reused, "seconds": round(seconds, 2)})
        self.progress(f"{name}: {'reused' if reused else 'done'} in {seconds:.1f} s")
        return result

    def _data(self) -> tuple[WindowData, str]:
        config = self.config.data
        key = _hash("data", config.model_dump(mode="json", by_alias=True))
        stage = _Stage(self.run_dir / "data", key)

        def work(reused: bool) -> WindowData:
            if reused:
                return WindowData.load(stage.directory)
            data = prepare_data(config)
            data.save(stage.directory)
            return data

        data = self._timed("data", stage, work)
        return data, _hash(key, data.fingerprint())

    def _model(self, run_name: str, settings: dict[str, Any], data: WindowData,
               data_key: str) -> tuple[Generator, str]:
        model_cls, settings = model_settings(run_name, settings, seed=self.config.seed,
                                             device=self.config.device)
        key = _hash("model", data_key, model_cls.name, settings)
        stage = _Stage(self.run_dir / "models" / run_name, key, scratch="training")

        def work(reused: bool) -> Generator:
            if reused:
                return Generator.load(stage.directory / "model")
            training = stage.directory / "training"
            resume = (training / CHECKPOINT).is_file() and _same_key(training, key)
            atomic_write_json(training / "key.json", {"key": key})
            generator = model_cls(**settings).fit(data, run_dir=training, resume=resume)
            generator.save(stage.directory / "model")
            return generator

        return self._timed(f"model {run_name}", stage, work), key

    def _samples(self, run_name: str, model: Generator, model_key: str
                 ) -> tuple[np.ndarray, str]:
        sampling = self.config.sampling
        key = _hash("samples", model_key, sampling.model_dump(mode="json"), self.config.seed)
        stage = _Stage(self.run_dir / "samples" / run_name, key)

        def work(reused: bool) -> np.ndarray:
            main = stage.directory / "samples.npy"
            if reused:
                return np.load(main, allow_pickle=False)
            returns = model.sample_returns(sampling.n, seed=self.config.seed,
                                           length=sampling.length)
            atomic_save_npy(main, returns)
            for regime in sampling.regimes:
                atomic_save_npy(stage.directory / f"samples_{regime}.npy", model.sample_returns(
                    sampling.n, condition=regime, seed=self.config.seed, length=sampling.length))
            return returns

        return self._timed(f"samples {run_name}", stage, work), key

    def _evaluate(self, data: WindowData, samples: dict[str, np.ndarray],
                  sample_keys: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
        key = _hash("evaluation", sample_keys, self.config.evaluation.model_dump(),
                    self.config.seed)
        stage = _Stage(self.run_dir / "report", key)
        headline = stage.directory / "summary.json"

        def work(reused: bool) -> tuple[pd.DataFrame, list[str]]:
            if not reused:
                window_samples = {name: x[:, :data.window_len] for name, x in samples.items()}
                evaluation = evaluate_windows(data, window_samples, seed=self.config.seed,
                                              neural=self.config.evaluation.neural)
                regime_vol = self._regime_vol(samples)
                evaluation.about["regime_vol"].update(regime_vol)  # in the report, too
                evaluation.about["samples"] = sample_keys  # the stage keys they came from
                evaluation.save(stage.directory)
                atomic_write_json(stage.directory / "regime_vol.json", regime_vol)
                atomic_write_json(headline, {
                    "summary": finite_json({name: evaluation.summary(name).to_dict(orient="index")
                                            for name in evaluation.scores}),
                    "warnings": evaluation.warnings})
            saved = json.loads(headline.read_text())
            return (pd.concat({name: pd.DataFrame(table).T for name, table in
                               saved["summary"].items()}, names=["reference", "set"]),
                    saved["warnings"])

        return self._timed("evaluation", stage, work)

    def _regime_vol(self, samples: dict[str, np.ndarray]) -> dict[str, Any]:
        """Annualized realized vol of each model's regime-conditioned samples."""
        table: dict[str, dict[str, float]] = {}
        for run_name in samples:
            folder = self.run_dir / "samples" / run_name
            table[run_name] = {regime: float(np.load(folder / f"samples_{regime}.npy").std()
                                             * np.sqrt(TRADING_DAYS))
                               for regime in self.config.sampling.regimes}
        return table


def _same_key(training: Path, key: str) -> bool:
    try:
        return json.loads((training / "key.json").read_text()).get("key") == key
    except (OSError, ValueError, AttributeError):  # missing or damaged: train afresh
        return False
