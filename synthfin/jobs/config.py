"""Pydantic models of a pipeline YAML: one place for defaults and validation."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synthfin.data.conditions import REGIME_NAMES
from synthfin.data.windows import WindowSettings
from synthfin.errors import ConfigError, SynthfinError, first_line
from synthfin.io import check_name

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(WindowSettings):
    """Where prices come from, and how they become windows."""

    source: str = "bundled"
    tickers: list[str] | None = None
    start: date | None = None
    end: date | None = None
    fill_gaps: int = Field(0, ge=0)
    cache_dir: str | None = None


class SamplingConfig(_Strict):
    """How many paths each model draws for evaluation, and which regimes besides."""

    n: int = Field(2000, ge=2)
    length: int | None = Field(None, ge=1)
    regimes: list[str] = []

    @field_validator("regimes")
    @classmethod
    def _known_regimes(cls, regimes: list[str]) -> list[str]:
        unknown = [name for name in regimes if name not in REGIME_NAMES]
        if unknown:
            raise ValueError(f"unknown regime(s) {', '.join(map(repr, unknown))}; "
                             f"choose among {', '.join(REGIME_NAMES)}")
        return regimes


class EvaluationConfig(_Strict):
    neural: bool = True


class DistributedConfig(_Strict):
    """Data-parallel training: every neural model trains in ``nproc`` local processes
    (``torchrun --standalone``; a model's own ``nproc`` setting wins). For several machines,
    launch ``synthfin train`` with torchrun instead (see the README)."""

    nproc: int = Field(1, ge=1)


class PipelineConfig(_Strict):
    """A whole pipeline. ``models`` maps a run name to settings; ``model:`` inside picks the
    registered generator (default: the run name itself), every other key is a model setting."""

    name: str
    seed: int = Field(0, ge=0)
    device: str = "auto"
    output: str | None = None
    data: DataConfig = DataConfig()
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    sampling: SamplingConfig = SamplingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    distributed: DistributedConfig = DistributedConfig()

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        return check_name(name, "the pipeline name")  # runs/NAME must stay inside runs/

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from synthfin.models import available_generators, get_generator

        for run_name, settings in models.items():
            check_name(run_name, "the model name")  # models/NAME, samples/NAME
            settings = dict(settings or {})
            kind = settings.pop("model", run_name)
            if kind not in available_generators():
                raise ValueError(f"model {run_name!r}: unknown generator {kind!r}; available: "
                                 f"{', '.join(available_generators())} (set `model:` to one)")
            try:  # every setting's type and range, before any data is read
                get_generator(kind)(**settings)
            except SynthfinError as error:
                raise ValueError(str(error) if kind == run_name else f"{run_name}: {error}"
                                 ) from None
        return {name: dict(settings or {}) for name, settings in models.items()}

    @model_validator(mode="after")
    def _distributed_models(self) -> PipelineConfig:
        """``distributed.nproc`` becomes the ``nproc`` setting of every neural model."""
        from synthfin.models import get_generator

        if self.distributed.nproc > 1:
            for run_name, settings in self.models.items():
                config_class = get_generator(settings.get("model", run_name)).config_class
                if "nproc" in {field.name for field in dataclasses.fields(config_class)}:
                    settings.setdefault("nproc", self.distributed.nproc)
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f"runs/{self.name}")


def load_pipeline_config(path: str | Path, **overrides: Any) -> PipelineConfig:
    """Read and validate a pipeline YAML; ``overrides`` (``seed=``, ``device=``, ``output=``)
    replace top-level keys. Errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise SynthfinError(f"no such pipeline file: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(error)}") from None
    except ValueError as error:  # a value YAML reads but cannot build, e.g. a date 2008-13-45
        raise ConfigError(f"{path} holds a value that cannot be read ({first_line(error)}); "
                          "write dates as YYYY-MM-DD") from None
    except (UnicodeDecodeError, OSError) as error:
        raise ConfigError(f"cannot read {path} as UTF-8 text ({first_line(error)})") from None
    if not isinstance(raw, dict):
        raise SynthfinError(f"{path} must hold a mapping (name:, data:, models:, ...)")
    raw.update({key: value for key, value in overrides.items() if value is not None})
    return validated(PipelineConfig, raw, str(path))


def _yaml_problem(error: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML syntax error, on one line."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or first_line(error)
    return problem if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def validated(model: type[M], values: dict[str, Any], origin: str) -> M:
    """``model`` built from ``values``; a :class:`SynthfinError` naming ``origin`` and each
    offending key otherwise."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: "
                             f"{e['msg'].removeprefix('Value error, ')}" for e in error.errors())
        raise ConfigError(f"{origin}: {problems}") from None
