"""One call from real and synthetic returns to every score, fact and warning: :func:`evaluate`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from synthfin.data.conditions import TRADING_DAYS
from synthfin.data.windows import WindowData
from synthfin.errors import DataError
from synthfin.evaluation.joint import JointScores, joint_scores, joint_summary
from synthfin.evaluation.long_horizon import LONG_MIN_DAYS, LongHorizon, long_horizon
from synthfin.evaluation.neural import NeuralScoreConfig, discriminative_score, predictive_score
from synthfin.evaluation.report import write_report
from synthfin.evaluation.scores import (
    Reference,
    ScoreTable,
    as_paths,
    degenerate,
    memorization_table,
    score_samples,
    undefined_facts,
)
from synthfin.io import atomic_directory, atomic_write_json, finite_json
from synthfin.models.base import implausible_note, implausible_paths
from synthfin.models.training import report_progress
from synthfin.stats import catalogue, stylized_facts
from synthfin.stats.tails import RISK_LEVEL, value_at_risk

RETURN_QUANTILES = (0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999)
SUMMARY_SCORES = ("w1_1d", "w1_20d", "cross_corr")  # after the catalogue's headline facts


def summary_columns() -> list[str]:
    """The scores of the summary table: the headline facts of the catalogue, in its order, then
    :data:`SUMMARY_SCORES`."""
    return [fact.name for fact in catalogue.FACTS if fact.headline] + list(SUMMARY_SCORES)


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured; render with :meth:`save` (``metrics.json`` and
    ``report.html``).

    Attributes
    ----------
    references : dict name -> Reference
        The real reference windows (unscaled log returns, chronological) and their floor halves:
        ``in_sample`` and ``out_of_sample`` from :func:`evaluate_windows`.
    samples : dict name -> array (m, length, assets)
        The synthetic windows, unscaled (longer paths cut into consecutive windows).
    assets : list of str
    scores : dict reference name -> ScoreTable
        Fact gaps, the noise floor and standardized curve gaps against each reference.
    memorization : DataFrame
        Nearest-training-window distances of every set against held-out ones (empty when no
        training windows were given); the gate for every reference.
    secondary : DataFrame
        Discriminative score (mean, std) and predictive MAE per set; a ``real (TRTR)`` row holds
        train-on-real for comparison. Empty when not computed.
    facts : dict name -> dict
        :func:`synthfin.stats.stylized_facts` of each reference (``real (NAME)``) and every
        sample set.
    long_horizon : LongHorizon or None
        Facts of paths of 1,000 days or more against the real series' segments.
    joint : dict reference name -> JointScores
        Cross-asset facts (correlations calm and stressed, tail dependence, portfolios) against
        each reference with their floors; empty for one asset.
    about : dict
        What a reader needs to cite the run (:func:`run_metadata`): data period and split
        dates, the prepared data's fingerprint, regime thresholds and the annualized vol of each
        regime, seed, package version and commit, and what the samples came from (set by the
        caller: a samples file's SHA-256, a pipeline stage's key). Empty when the evaluation was
        not made from a prepared data set.
    """

    references: dict[str, Reference]
    samples: dict[str, np.ndarray]
    assets: list[str]
    scores: dict[str, ScoreTable]
    memorization: pd.DataFrame = field(default_factory=pd.DataFrame)
    secondary: pd.DataFrame = field(default_factory=pd.DataFrame)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    long_horizon: LongHorizon | None = None
    about: dict[str, Any] = field(default_factory=dict)
    joint: dict[str, JointScores] = field(default_factory=dict)

    @cached_property
    def real(self) -> np.ndarray:
        """Every reference window, in reference order (the real side of the figures)."""
        return np.concatenate([reference.windows for reference in self.references.values()])

    def summary(self, reference: str | None = None) -> pd.DataFrame:
        """The headline table: main fact gaps in units of each reference's noise floor,
        memorization and the discriminative score. Rows: (reference, set), the two anchors
        (:func:`~synthfin.evaluation.scores.anchor_samples`) last; only the sets when
        ``reference`` is named. :meth:`blind_scores` names the columns an anchor passes."""
        names = [reference] if reference else list(self.scores)
        tables = {}
        for name in names:
            scores = self.scores[name]
            ratios = scores.ratios
            if scores.anchors is not None:
                ratios = pd.concat([ratios, scores.anchor_ratios])
            table = ratios[[c for c in summary_columns() if c in ratios]].add_suffix(" /floor")
            if len(self.memorization):
                table["memorization"] = self.memorization["median_ratio"].reindex(table.index)
                table["copies"] = self.memorization["copy_share"].reindex(table.index)
            if len(self.secondary):
                table["discriminative"] = self.secondary["discriminative"].reindex(table.index)
            tables[name] = table
        if reference:
            return tables[reference]
        return pd.concat(tables, names=["reference", "set"])

    def blind_scores(self, reference: str) -> list[str]:
        """The summary scores of ``reference`` that cannot tell an anchor (iid noise) from the
        real data (:attr:`ScoreTable.blind`): a model passing them shows nothing."""
        table = self.scores[reference]
        if table.anchors is None:
            return []
        return [c for c in summary_columns() if c in table.blind.index and table.blind[c]]

    def joint_summary(self) -> pd.DataFrame:
        """Joint facts (multi-asset only): :func:`synthfin.evaluation.joint.joint_summary`."""
        return joint_summary(self.joint) if self.joint else pd.DataFrame()

    def return_quantiles(self) -> pd.DataFrame:
        """Quantiles of daily log returns and the 1-day VaR and ES at 99 % (positive losses,
        :func:`synthfin.stats.tails.value_at_risk`) of every reference's real windows and every set,
        per asset: rows (set, asset)."""
        sets = {f"real ({name})": ref.windows for name, ref in self.references.items()}
        sets.update(self.samples)
        rows = {}
        for name, x in sets.items():
            for asset, asset_name in enumerate(self.assets):
                values = x[:, :, asset].ravel()
                if not np.isfinite(values).all():
                    continue
                row = {f"q{100 * q:g}%": float(np.quantile(values, q))
                       for q in RETURN_QUANTILES}
                var, es = value_at_risk(values, RISK_LEVEL)
                row.update({f"VaR {RISK_LEVEL:.0%}": var, f"ES {RISK_LEVEL:.0%}": es})
                rows[(name, asset_name)] = row
        return pd.DataFrame(rows).T.rename_axis(["set", "asset"])

    def floors(self) -> pd.DataFrame:
        """The noise floor of every score, one row per reference."""
        return pd.DataFrame({name: table.floor for name, table in self.scores.items()}).T

    @property
    def warnings(self) -> list[str]:
        """Loud messages a reader must not miss (degenerate sets, memorization, collapse)."""
        messages = []
        real_std = self.real.std(axis=(0, 1))
        for name, x in self.samples.items():
            beyond = int(implausible_paths(x, real_std).sum())
            if beyond:
                messages.append("IMPLAUSIBLE: " + implausible_note(beyond, len(x), repr(name)))
            problem = degenerate(x, real_std)
            if problem:
                messages.append(f"DEGENERATE: {name!r} {problem}; its scores are meaningless "
                                "(gaps infinite or very large)")
                continue
            spread = np.std(x.reshape(len(x), -1), axis=0).mean()
            if spread < 0.05 * real_std.mean():
                messages.append(f"COLLAPSE: {name!r} samples barely differ from each other "
                                f"(mean per-step std {spread:.2e} vs real {real_std.mean():.2e})")
        for name, row in self.memorization.iterrows():
            if row["flagged"]:
                messages.append(
                    f"MEMORIZATION: {name!r} copies training data ({row['copy_share']:.0%} exact "
                    f"copies, {row['close_share']:.0%} closer to a training window than 95 % of "
                    "held-out real windows); its fidelity scores are not evidence of "
                    "generalization")
        return messages

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable metrics (NaN and inf become null); one block per reference."""
        window = {"assets": self.assets, "window_length": int(self.real.shape[1]),
                  "n_samples": {name: int(len(x)) for name, x in self.samples.items()}}
        for name, table in self.scores.items():
            reference = self.references[name]
            window[name] = {
                "n_real_windows": int(len(reference.windows)),
                "floor_halves": [int(len(reference.first)), int(len(reference.second))],
                "noise_floor": table.floor.to_dict(),
                "noise_floor_spread": (None if table.floor_spread is None
                                       else table.floor_spread.to_dict()),
                "floor_assignments": len(reference.assignments),
                "anchor_gaps": (None if table.anchors is None
                                else table.anchors.to_dict(orient="index")),
                "blind_scores": (None if table.anchors is None
                                 else [k for k, v in table.blind.items() if v]),
                "gaps": table.gaps.to_dict(orient="index"),
                "gaps_over_floor": table.ratios.to_dict(orient="index"),
                "standardized_curve_gaps": table.standardized.to_dict(orient="index"),
                "summary": self.summary(name).to_dict(orient="index"),
            }
        return finite_json({
            **window,
            "memorization": self.memorization.to_dict(orient="index"),
            "secondary": self.secondary.to_dict(orient="index"),
            "warnings": self.warnings,
            "long_horizon": None if self.long_horizon is None else self.long_horizon.to_dict(),
            "return_quantiles": {f"{name} / {asset}": row for (name, asset), row
                                 in self.return_quantiles().to_dict(orient="index").items()},
            "about": self.about,
            "facts": self.facts,
            "joint": {name: table.to_dict() for name, table in self.joint.items()},
        })

    def save(self, directory: str | Path) -> Path:
        """Write ``metrics.json``, the self-contained ``report.html`` and its figures into
        ``directory`` as a unit (:func:`~synthfin.io.atomic_directory`): a kill at any moment
        leaves the previous report or this one, never parts of both."""
        directory = Path(directory)
        with atomic_directory(directory) as temp:
            atomic_write_json(temp / "metrics.json", self.to_dict())
            write_report(self, temp)
        return directory


def _facts(x: np.ndarray) -> dict[str, Any]:
    """Stylized facts of a set, or the reason it has none."""
    if undefined_facts(x):
        return {"degenerate": True}
    return stylized_facts(x if x.shape[2] > 1 else x[..., 0])


def cut_windows(x: np.ndarray, length: int, name: str) -> np.ndarray:
    """Paths (n, days, assets) cut into consecutive windows of ``length`` days (the rest of a
    path is dropped): (n * (days // length), length, assets)."""
    n, days, assets = x.shape
    if days < length:
        raise DataError(f"samples {name!r} have {days} days per path, fewer than the real "
                        f"windows' {length}; sample paths of at least {length} days")
    per_path = days // length
    return x[:, :per_path * length].reshape(n * per_path, length, assets)


def evaluate(references: Mapping[str, Reference] | np.ndarray, samples: Mapping[str, np.ndarray],
             *, train: np.ndarray | None = None, held_out: np.ndarray | None = None,
             history: np.ndarray | None = None, assets: list[str] | None = None,
             neural: bool = True, seed: int = 0,
             neural_config: NeuralScoreConfig | None = None) -> Evaluation:
    """Compare synthetic returns with real windows on every stylized fact and score.

    Parameters
    ----------
    references : mapping name -> Reference, or array (n, length, assets)
        Real reference windows of unscaled log returns with their noise-floor halves; an array
        becomes one reference named ``reference`` split by :meth:`Reference.blocked`.
    samples : mapping name -> array (m, days, assets)
        Unscaled synthetic paths of at least the windows' length; longer paths are cut into
        consecutive windows, and paths of 1,000 days or more are also judged on long-horizon
        facts when ``history`` is given.
    train, held_out : arrays, optional
        Training windows and held-out real windows: enable the memorization check and the
        predictive score's train-on-real reference.
    history : array (days, assets), optional
        The whole real series, for the long-horizon facts.
    assets : list of str, optional
        Asset names for the report.
    neural : bool
        Also compute the discriminative and predictive scores (a few seconds per set on CPU).
    seed : int
        Seeds every subsample and network.
    """
    if not isinstance(references, Mapping):
        references = {"reference": Reference.blocked(references)}
    references = dict(references)
    length = next(iter(references.values())).windows.shape[1]
    paths = {name: as_paths(x, f"samples {name!r}", allow_non_finite=True)
             for name, x in samples.items()}
    windows = {name: cut_windows(x, length, name) for name, x in paths.items()}
    scores = {name: score_samples(reference, windows) for name, reference in references.items()}
    memo = (memorization_table(windows, train, held_out, seed=seed)
            if train is not None and held_out is not None else pd.DataFrame())
    all_facts = {f"real ({name})": _facts(reference.windows)
                 for name, reference in references.items()}
    all_facts.update({name: _facts(x) for name, x in windows.items()})
    long = {name: x for name, x in paths.items()
            if x.shape[1] >= LONG_MIN_DAYS and np.isfinite(x).all()}
    secondary = pd.DataFrame()
    if neural:
        real = np.concatenate([reference.windows for reference in references.values()])
        rows = {}
        test = held_out if held_out is not None else real
        bar = tqdm(windows.items(), desc="neural scores", unit="set", disable=None, leave=False)
        for name, x in bar:  # the long part: a bar on a terminal, silent elsewhere
            if not np.isfinite(x).all():
                continue
            report_progress(f"neural scores of {name}")
            mean, std = discriminative_score(real, x, seed=seed, config=neural_config)
            rows[name] = {"discriminative": mean, "discriminative_std": std,
                          "predictive_mae": predictive_score(x, test, seed=seed,
                                                             config=neural_config)}
        if train is not None:
            rows["real (TRTR)"] = {"predictive_mae": predictive_score(train, test, seed=seed,
                                                                      config=neural_config)}
        secondary = pd.DataFrame(rows).T
    n_assets = next(iter(references.values())).windows.shape[2]
    joint = ({name: joint_scores(reference, windows) for name, reference in references.items()}
             if n_assets > 1 else {})
    return Evaluation(references=references, samples=windows, scores=scores, memorization=memo,
                      joint=joint,
                      secondary=secondary, facts=all_facts,
                      long_horizon=long_horizon(history, long) if long and history is not None
                      else None,
                      assets=assets or [f"asset_{a}" for a in range(n_assets)])


def data_references(data: WindowData) -> dict[str, Reference]:
    """The two references of a prepared data set: ``in_sample`` (the training windows, floor =
    interleaved blocks) and ``out_of_sample`` (validation + test windows, floor = validation
    against test, its spread from block-bootstrap replicates)."""
    return {"in_sample": Reference.blocked(data.real_windows("train"), data.stride),
            "out_of_sample": Reference.split(data.real_windows("val"),
                                             data.real_windows("test"), data.stride)}


def evaluate_windows(data: WindowData, samples: Mapping[str, np.ndarray], *,
                     neural: bool = True, seed: int = 0,
                     neural_config: NeuralScoreConfig | None = None) -> Evaluation:
    """:func:`evaluate` against a prepared data set: both references of
    :func:`data_references`, memorization of training against held-out (val + test) windows,
    and long-horizon facts against the whole history for paths of 1,000 days or more."""
    references = data_references(data)
    evaluation = evaluate(references, samples, train=references["in_sample"].windows,
                          held_out=references["out_of_sample"].windows, history=data.history(),
                          assets=data.assets, neural=neural, seed=seed,
                          neural_config=neural_config)
    evaluation.about = run_metadata(data, seed)
    return evaluation


def run_metadata(data: WindowData, seed: int) -> dict[str, Any]:
    """What a report needs to be cited: the data period and split dates, windows, the regime
    thresholds (annualized realized vol of ``vol_lookback`` days, from training quantiles) and
    the real training windows' annualized vol per regime, the seed, synthfin's version and the
    git commit of its source (``"unknown"`` outside a git checkout)."""
    from synthfin import __version__

    windows, labels = data.real_windows("train"), data.train.regimes
    real_vol = {name: float(windows[labels == code].std() * np.sqrt(TRADING_DAYS))
                for code, name in enumerate(data.regimes.names) if (labels == code).any()}
    return {
        "assets": list(data.assets),
        "period": [data.split_dates["train"][0], data.split_dates["test"][1]],
        "data_fingerprint": data.fingerprint(),
        "split_dates": {name: list(days) for name, days in data.split_dates.items()},
        "window_len": data.window_len, "stride": data.stride,
        "vol_lookback": data.vol_lookback,
        "regime_quantiles": list(data.regimes.quantiles),
        "regime_thresholds": [float(v) for v in data.regimes.thresholds_],
        "regime_names": list(data.regimes.names),
        "regime_vol": {"real (train windows)": real_vol},
        "seed": seed, "synthfin_version": __version__, "commit": source_commit(),
    }


def source_commit() -> str:
    """The git commit of synthfin's source tree (``+dirty`` with uncommitted changes), or
    ``"unknown"`` (an installed wheel, no git)."""
    import subprocess

    folder = Path(__file__).resolve().parents[2]  # the checkout holding synthfin/

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:  # a wheel inside some other repository (a venv in a project) is not its checkout
        if Path(git("rev-parse", "--show-toplevel")).resolve() != folder:
            return "unknown"
        commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit
