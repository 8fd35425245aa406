"""Joint (cross-asset) scores of multi-asset samples, each beside its noise floor.

The facts are those of :mod:`synthfin.stats.joint`: correlation-matrix error, mean correlation on
all, calm and stressed days, lower-tail dependence, and the equal-weight and minimum-variance
portfolios' kurtosis, ACF of ``|r|``, 99 % VaR and ES. The floor is the one the single-series
facts use (:class:`synthfin.evaluation.scores.Reference`): the same distance between the
reference's two disjoint halves. The calm/stressed thresholds (quartiles of the equal-weight
portfolio's trailing 21-day vol) and the minimum-variance weights are taken from the whole
reference and applied to every set, halves included, so that all are split and weighted alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthfin.evaluation.scores import Reference, as_paths, undefined_facts
from synthfin.stats import joint

SUMMARY_JOINT = ("corr_mae", "calm_corr", "stressed_corr", "tail_dependence", "ew_kurtosis",
                 "ew_es99")


@dataclass
class JointScores:
    """Joint facts of one real reference and of every sample set.

    Attributes
    ----------
    values : DataFrame
        Rows ``real`` and every set; columns :data:`synthfin.stats.joint.JOINT_SCALARS`.
    gaps : DataFrame
        Rows: sets; columns: ``corr_mae``, the scalars and the ACF curves' L2 gaps.
    floor : Series
        The same gaps between the reference's two halves.
    correlations : dict name -> array (assets, assets)
        ``real`` and every set's correlation matrix (for the heat map).
    """

    values: pd.DataFrame
    gaps: pd.DataFrame
    floor: pd.Series
    correlations: dict[str, np.ndarray]

    @property
    def ratios(self) -> pd.DataFrame:
        """Gaps in units of the noise floor."""
        return self.gaps / self.floor.replace(0.0, np.nan)

    def to_dict(self) -> dict:
        return {"values": self.values.to_dict(orient="index"),
                "gaps": self.gaps.to_dict(orient="index"), "noise_floor": self.floor.to_dict(),
                "gaps_over_floor": self.ratios.to_dict(orient="index")}


def joint_scores(reference: Reference, samples: Mapping[str, np.ndarray]) -> JointScores:
    """Joint facts of ``samples`` (name -> (m, length, assets >= 2)) against one reference.

    A set with non-finite values or a constant asset gets NaN values and infinite gaps.
    """
    real = reference.windows
    thresholds = joint.stress_thresholds(real)
    weights = joint.min_variance_weights(real)

    def statistics(x: np.ndarray) -> dict[str, np.ndarray]:
        return joint.joint_statistics(x, thresholds, weights)

    real_stats = statistics(real)
    floor = joint.joint_gaps(statistics(real[reference.first]),
                             statistics(real[reference.second]))
    values, gaps = {"real": _scalars(real_stats)}, {}
    correlations = {"real": real_stats["corr"]}
    for name, x in samples.items():
        x = as_paths(x, f"samples {name!r}", allow_non_finite=True)
        if undefined_facts(x):
            values[name] = dict.fromkeys(joint.JOINT_SCALARS, np.nan)
            gaps[name] = dict.fromkeys(floor, np.inf)
            continue
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            set_stats = statistics(x)
        values[name], correlations[name] = _scalars(set_stats), set_stats["corr"]
        gaps[name] = joint.joint_gaps(set_stats, real_stats)
    return JointScores(values=pd.DataFrame(values).T, gaps=pd.DataFrame(gaps).T,
                       floor=pd.Series(floor), correlations=correlations)


def _scalars(statistics: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {key: float(statistics[key]) for key in joint.JOINT_SCALARS}


def joint_summary(scores: Mapping[str, JointScores]) -> pd.DataFrame:
    """Per reference and set: the main joint gaps over their floor, and the real and synthetic
    calm / stressed correlation and tail dependence values. Rows (reference, set)."""
    tables = {}
    for name, table in scores.items():
        ratios = table.ratios[list(SUMMARY_JOINT)].add_suffix(" /floor")
        shown = table.values[["mean_corr", "calm_corr", "stressed_corr", "tail_dependence"]]
        tables[name] = pd.concat([shown, ratios], axis=1).loc[list(table.values.index)]
    return pd.concat(tables, names=["reference", "set"])
