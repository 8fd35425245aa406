"""One call from real and synthetic returns to every score, fact and warning: :func:`evaluate`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthfin.data.windows import WindowData
from synthfin.evaluation import facts
from synthfin.evaluation.neural import NeuralScoreConfig, discriminative_score, predictive_score
from synthfin.evaluation.scores import ScoreTable, as_paths, score_samples

SUMMARY_COLUMNS = ("acf_r", "acf_abs", "acf_sq", "leverage", "tails", "kurtosis", "w1_1d",
                   "w1_20d", "cross_corr")


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured; render with :meth:`save` (``metrics.json`` and
    ``report.html``).

    Attributes
    ----------
    real : array (n, length, assets)
        The real reference windows (unscaled log returns, chronological).
    samples : dict name -> array (m, length, assets)
        The synthetic sets, unscaled.
    assets : list of str
    scores : ScoreTable
        Fact gaps, the noise floor, standardized curve gaps and memorization.
    secondary : DataFrame
        Discriminative score (mean, std) and predictive MAE per set; a ``real (TRTR)`` row holds
        train-on-real for comparison. Empty when not computed.
    facts : dict name -> dict
        :func:`synthfin.evaluation.facts.stylized_facts` of ``real``, its two halves
        (``real (first half)``, ``real (second half)``) and every sample set.
    """

    real: np.ndarray
    samples: dict[str, np.ndarray]
    assets: list[str]
    scores: ScoreTable
    secondary: pd.DataFrame = field(default_factory=pd.DataFrame)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The headline table: main fact gaps in units of the noise floor, memorization, and the
        discriminative score; rows are the sample sets."""
        ratios = self.scores.ratios[[c for c in SUMMARY_COLUMNS if c in self.scores.ratios]]
        table = ratios.add_suffix(" /floor")
        if len(self.scores.memorization):
            table["memorization"] = self.scores.memorization["median_ratio"]
            table["copies"] = self.scores.memorization["copy_share"]
        if len(self.secondary):
            table["discriminative"] = self.secondary["discriminative"].reindex(table.index)
        return table

    @property
    def warnings(self) -> list[str]:
        """Loud messages a reader must not miss (memorization, collapse)."""
        messages = []
        for name, row in self.scores.memorization.iterrows():
            if row["flagged"]:
                messages.append(
                    f"MEMORIZATION: {name!r} copies training data ({row['copy_share']:.0%} exact "
                    f"copies, {row['close_share']:.0%} closer to a training window than 95 % of "
                    "held-out real windows); its fidelity scores are not evidence of "
                    "generalization")
        for name, x in self.samples.items():
            spread = np.std(x.reshape(len(x), -1), axis=0).mean()
            if spread < 0.05 * self.real.std():
                messages.append(f"COLLAPSE: {name!r} samples barely differ from each other "
                                f"(mean per-step std {spread:.2e} vs real {self.real.std():.2e})")
        return messages

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable metrics (NaN and inf become null)."""
        return finite_json({
            "assets": self.assets,
            "window_length": int(self.real.shape[1]),
            "n_real_windows": int(len(self.real)),
            "n_samples": {name: int(len(x)) for name, x in self.samples.items()},
            "noise_floor": self.scores.floor.to_dict(),
            "gaps": self.scores.gaps.to_dict(orient="index"),
            "gaps_over_floor": self.scores.ratios.to_dict(orient="index"),
            "standardized_curve_gaps": self.scores.standardized.to_dict(orient="index"),
            "memorization": self.scores.memorization.to_dict(orient="index"),
            "secondary": self.secondary.to_dict(orient="index"),
            "warnings": self.warnings,
            "facts": self.facts,
        })

    def save(self, directory: str | Path) -> Path:
        """Write ``metrics.json`` and the self-contained ``report.html`` into ``directory``."""
        from synthfin.evaluation.report import write_report
        from synthfin.io import atomic_write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(directory / "metrics.json", self.to_dict())
        write_report(self, directory)
        return directory


def finite_json(value: Any) -> Any:
    """Replace NaN / inf by None and NumPy scalars by Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [finite_json(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (float, np.floating, int, np.integer)):
        return None if not math.isfinite(float(value)) else value.item() if hasattr(
            value, "item") else value
    return value


def evaluate(real: np.ndarray, samples: Mapping[str, np.ndarray], *,
             train: np.ndarray | None = None, held_out: np.ndarray | None = None,
             assets: list[str] | None = None, neural: bool = True, seed: int = 0,
             neural_config: NeuralScoreConfig | None = None) -> Evaluation:
    """Compare synthetic windows with real ones on every stylized fact and score.

    Parameters
    ----------
    real : array (n, length, assets)
        Real windows of unscaled log returns in chronological order: the fidelity reference.
    samples : mapping name -> array (m, length, assets)
        Unscaled synthetic windows of the same length.
    train, held_out : arrays, optional
        Training windows and held-out real windows: enable the memorization check and the
        predictive score's train-on-real reference.
    assets : list of str, optional
        Asset names for the report.
    neural : bool
        Also compute the discriminative and predictive scores (a few seconds per set on CPU).
    seed : int
        Seeds every subsample and network.
    """
    real = as_paths(real, "real")
    samples = {name: as_paths(x, f"samples {name!r}") for name, x in samples.items()}
    scores = score_samples(real, samples, train=train, held_out=held_out, seed=seed)
    half = len(real) // 2
    fact_sets = {"real": real, "real (first half)": real[:half], "real (second half)":
                 real[half:], **samples}
    all_facts = {name: facts.stylized_facts(x if x.shape[2] > 1 else x[..., 0])
                 for name, x in fact_sets.items()}
    secondary = pd.DataFrame()
    if neural:
        rows = {}
        test = held_out if held_out is not None else real
        for name, x in samples.items():
            mean, std = discriminative_score(real, x, seed=seed, config=neural_config)
            rows[name] = {"discriminative": mean, "discriminative_std": std,
                          "predictive_mae": predictive_score(x, test, seed=seed,
                                                             config=neural_config)}
        if train is not None:
            rows["real (TRTR)"] = {"predictive_mae": predictive_score(train, test, seed=seed,
                                                                      config=neural_config)}
        secondary = pd.DataFrame(rows).T
    return Evaluation(real=real, samples=samples, scores=scores, secondary=secondary,
                      facts=all_facts,
                      assets=assets or [f"asset_{a}" for a in range(real.shape[2])])


def evaluate_windows(data: WindowData, samples: Mapping[str, np.ndarray], *,
                     neural: bool = True, seed: int = 0,
                     neural_config: NeuralScoreConfig | None = None) -> Evaluation:
    """:func:`evaluate` against a prepared data set: every real window is the reference, the
    training windows and the held-out (val + test) windows feed the memorization check."""
    return evaluate(data.real_windows(), samples, train=data.real_windows("train"),
                    held_out=data.real_windows("val", "test"), assets=data.assets,
                    neural=neural, seed=seed, neural_config=neural_config)
