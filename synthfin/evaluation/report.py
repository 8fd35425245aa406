"""Render an :class:`~synthfin.evaluation.evaluate.Evaluation` for people: :func:`write_report`.

Two files, each written atomically: ``report.html``, self-contained (inline CSS, every figure a
base64 PNG) so it can be mailed or archived as one file, and ``report.md``, the same tables in
Markdown for a pull request or a terminal. The report opens with the warnings and a colour-coded
summary so that a reader sees at once which generator reproduces which fact; full tables and
figures follow.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly, so no pyplot
state or backend switch is involved and every figure is freed once encoded.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.special import expit, logit

from synthfin.data.returns import prices_from_returns
from synthfin.evaluation.scores import degenerate, horizon_returns
from synthfin.io import atomic_write_text
from synthfin.stats import catalogue, facts
from synthfin.stats.catalogue import Fact, long_max_lag

GOOD_RATIO = 1.0   # gap / noise floor: as close to real data as real data is to itself
FAIR_RATIO = 1.5
MAX_FIGURE_ASSETS = 4
SAMPLE_PATHS_PER_SET = 5
HISTOGRAM_HORIZONS = (1, 5, 20)
HISTOGRAM_BINS = 60
QQ_POINTS = 300
CCDF_POINTS = 400
TAIL_PLOT_MIN_STD = 0.3  # the tail plot starts at moves of 0.3 real standard deviations
ANNOTATED_HEATMAP_MAX_ASSETS = 8
DPI = 90
REAL_COLOR = "black"
REAL_BAND_COLOR = "0.82"

class Evaluated(Protocol):
    """What a report reads of an :class:`~synthfin.evaluation.evaluate.Evaluation`."""

    references: dict[str, Any]
    samples: dict[str, np.ndarray]
    assets: list[str]
    scores: dict[str, Any]
    memorization: pd.DataFrame
    secondary: pd.DataFrame
    long_horizon: Any
    about: dict[str, Any]
    joint: dict[str, Any]

    @property
    def real(self) -> np.ndarray: ...

    def summary(self, reference: str | None = None) -> pd.DataFrame: ...

    def blind_scores(self, reference: str) -> list[str]: ...

    def joint_summary(self) -> pd.DataFrame: ...

    def return_quantiles(self) -> pd.DataFrame: ...

    @property
    def warnings(self) -> list[str]: ...


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
td.good { background: #c8e6c9; } td.fair { background: #ffe0b2; }
td.bad { background: #ffcdd2; font-weight: bold; } td.na { color: #999; }
.warnings { border: 3px solid #c62828; background: #ffebee; color: #b71c1c; padding: 0.6em 1em;
            font-weight: bold; }
.no-warnings { border: 1px solid #2e7d32; color: #2e7d32; padding: 0.4em 1em; }
.legend, .note { font-size: 0.9em; color: #444; max-width: 60em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
"""

REFERENCE_QUESTIONS = {
    "in_sample": "In-sample: against the training windows (floor: two halves of interleaved "
                 "blocks of them). Answers: did the model learn the period it was trained on?",
    "out_of_sample": "Out-of-sample: against the validation and test windows, which no model "
                     "trained on (floor: validation against test). Answers: does the model "
                     "generalize to data it never saw?",
}

SUMMARY_LEGEND = (
    "Each <i>/floor</i> cell is the distance between a statistic of the synthetic windows and "
    "the same statistic of the reference's real windows, divided by the <b>noise floor</b>: "
    "that distance between the reference's two disjoint halves. Green (&le; 1x) is as close as "
    "real data is to itself, amber &le; 1.5x, red &gt; 1.5x; about 0.5x is what a perfect model "
    "that draws many windows scores, since then only the real side is noisy. acf_r, acf_abs, "
    "acf_sq: autocorrelation curves of r, |r| and r&sup2;; leverage: correlation of r with "
    "future r&sup2;; tails: extreme quantiles in std units; kurtosis: excess kurtosis of daily "
    "returns; vol_level: log of the daily std (catches mis-scaled sets); w1_1d, w1_20d: "
    "Wasserstein distance of 1- and 20-day returns in real std units. "
    "<b>memorization</b> = median distance from a sample to its nearest training window divided "
    "by the same for held-out real windows (1 ideal, &lt;&lt; 1 copies); <b>copies</b> = share "
    "of exact copies. Red there means the set is flagged and its fidelity scores are no "
    "evidence of generalization."
)


READING_GUIDE = (
    "<b>Reading a red cell.</b> Red means the set's statistic is further from the real one than "
    "1.5 times the distance between two halves of real data. Red <i>in-sample</i>: the model "
    "misses a fact of the very period it was trained on, a model failure. Red "
    "<i>out-of-sample</i> with green in-sample: the held-out years differ from the training "
    "years more than validation differs from test (another volatility level, a crisis in one "
    "half); the raw gaps table gives the size. Tails and kurtosis rest on the few most extreme "
    "days, and out of sample the floor compares two short periods (validation and test, a few "
    "hundred days each) that may share calm tails, so a small floor: tail ratios near 2 out of "
    "sample (the autoregressive and cvae models score about 1.9 on the S&P 500) say the "
    "synthetic tails are about as far from the held-out years as another period's would be, not "
    "that the model is broken. Check the tail and Q-Q figures and the return quantiles, VaR and "
    "ES table before concluding."
)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def write_report(evaluation: Evaluated, directory: Path) -> Path:
    """Write ``report.html`` and ``report.md`` for ``evaluation`` into ``directory``.

    Parameters
    ----------
    evaluation : Evaluation
        The result of :func:`synthfin.evaluation.evaluate.evaluate`.
    directory : pathlib.Path
        Destination folder, created if missing. Both files replace earlier ones atomically.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.
    """
    directory = Path(directory)
    atomic_write_text(directory / "report.md", _markdown_report(evaluation))
    return atomic_write_text(directory / "report.html", _html_report(evaluation))


def _html_report(evaluation: Evaluated) -> str:
    sections = [_header_html(evaluation), _about_html(evaluation),
                _warnings_html(evaluation.warnings)]
    for reference in evaluation.scores:
        summary = evaluation.summary(reference)
        sections += [f"<h2>Summary, {html.escape(reference)}: gaps in units of the noise "
                     "floor</h2>",
                     f'<p class="note">{html.escape(_question(reference))}</p>',
                     _html_table(summary, _summary_classes(summary, evaluation.memorization))]
        blind = evaluation.blind_scores(reference)
        if blind:
            sections.append(f'<p class="note">Blind (an anchor of iid noise passes them, so '
                            f'they show nothing alone): {html.escape(", ".join(blind))}</p>')
    sections += [f'<p class="legend">{SUMMARY_LEGEND}</p>',
                 f'<p class="legend">{READING_GUIDE}</p>', _full_tables_html(evaluation),
                 _figures_html(evaluation)]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>synthfin report</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _markdown_report(evaluation: Evaluated) -> str:
    lines = ["# Synthetic returns report", "", *_overview_lines(evaluation), ""]
    if evaluation.about:
        lines += ["## About this run", "", *(f"- {line}" for line in _about_lines(evaluation)),
                  ""]
        regime_vol = _regime_vol_table(evaluation)
        if len(regime_vol):
            lines += ["Annualized vol by regime:", "", _markdown_table(regime_vol), ""]
    lines += [f"- **{warning}**" for warning in evaluation.warnings] or ["No warnings."]
    for title, frame in _full_tables(evaluation):
        lines += ["", f"## {title}", "", _markdown_table(frame)]
    guide = READING_GUIDE.replace("<b>", "**").replace("</b>", "**")
    lines += ["", guide.replace("<i>", "*").replace("</i>", "*")]
    return "\n".join(lines) + "\n"


def _about_lines(evaluation: Evaluated) -> list[str]:
    """Provenance a citation needs, one fact a line (empty without ``evaluation.about``)."""
    about = evaluation.about
    if not about:
        return []
    splits = ", ".join(f"{name} {first} to {last}"
                       for name, (first, last) in about["split_dates"].items())
    cuts = [f"{v:.1%}" for v in about["regime_thresholds"]]
    bands = [f"{name} below {cuts[0]}" if i == 0 else
             f"{name} from {cuts[-1]}" if i == len(cuts) else
             f"{name} {cuts[i - 1]} to {cuts[i]}"
             for i, name in enumerate(about["regime_names"])]
    quantiles = ", ".join(f"{q:.0%}" for q in about["regime_quantiles"])
    return [f"Data: {', '.join(about['assets'])}, daily, {about['period'][0]} to "
            f"{about['period'][1]}",
            f"Splits (first and last day): {splits}",
            f"Windows: {about['window_len']} days, a new one every "
            f"{'day' if about['stride'] == 1 else str(about['stride']) + ' days'}",
            f"Regimes (annualized {about['vol_lookback']}-day realized vol before a window; "
            f"cut at the training quantiles {quantiles}): {'; '.join(bands)}",
            f"Seed: {about['seed']}",
            f"synthfin {about['synthfin_version']}, commit {about['commit']}"]


def _regime_vol_table(evaluation: Evaluated) -> pd.DataFrame:
    """Annualized vol of the real training windows of each regime and of each model's
    regime-conditioned samples (when the pipeline measured them)."""
    table = pd.DataFrame(evaluation.about.get("regime_vol", {})).T
    return table[[c for c in evaluation.about.get("regime_names", []) if c in table]]


# --------------------------------------------------------------------------------------------
# Text and tables
# --------------------------------------------------------------------------------------------


def _question(reference: str) -> str:
    return REFERENCE_QUESTIONS.get(reference, f"Against the real windows of {reference!r}.")


def _overview_lines(evaluation: Evaluated) -> list[str]:
    """Window length, window counts and assets, one fact a line."""
    n_samples = ", ".join(f"{name}: {len(x)}" for name, x in evaluation.samples.items())
    references = ", ".join(
        f"{name}: {len(ref.windows)} (floor halves {len(ref.first)} / {len(ref.second)})"
        for name, ref in evaluation.references.items())
    lines = [f"Window length: {evaluation.real.shape[1]} days",
             f"Real windows: {references}",
             f"Samples per set (windows): {n_samples}",
             f"Assets: {', '.join(evaluation.assets)}"]
    if evaluation.long_horizon is not None:
        long = evaluation.long_horizon
        lines.append(f"Long paths: {long.length} days, against {long.n_segments} real segments")
    return lines


def _full_tables(evaluation: Evaluated) -> list[tuple[str, pd.DataFrame]]:
    """Every table of the report in reading order, with its title; empty ones left out."""
    tables = [(f"Summary, {name}: gaps in units of the noise floor", evaluation.summary(name))
              for name in evaluation.scores]
    for name, scores in evaluation.scores.items():
        tables += [
            (f"Raw gaps, {name} (first rows: the noise floor, mean and spread over "
             f"{len(evaluation.references[name].assignments)} block assignments, and the "
             "anchors; 'blind': a score an anchor passes)",
             pd.concat([scores.floor.to_frame("noise floor").T,
                        *([] if scores.floor_spread is None
                          else [scores.floor_spread.to_frame("floor spread").T]),
                        *([] if scores.anchors is None
                          else [scores.anchors, scores.blind.to_frame("blind").T]),
                        scores.gaps])),
            (f"Standardized curve gaps, {name} (RMS in units of the real standard error)",
             scores.standardized)]
    quantiles = evaluation.return_quantiles()
    if len(evaluation.assets) == 1:
        quantiles = quantiles.droplevel("asset")
    else:
        quantiles.index = [f"{name} / {asset}" for name, asset in quantiles.index]
    tables += [("Return quantiles, VaR and ES (daily log returns)", quantiles)]
    tables += [("Joint facts (values, and gaps in units of the noise floor)",
                evaluation.joint_summary())]
    tables += [("Memorization", evaluation.memorization),
               ("Secondary scores (discriminative, predictive)", evaluation.secondary)]
    if evaluation.long_horizon is not None:
        tables.append(("Long horizon (share of entries inside the real segments' band)",
                       evaluation.long_horizon.summary()))
    return [(title, frame) for title, frame in tables if len(frame)]


def _full_tables_html(evaluation: Evaluated) -> str:
    notes = {
        "Standardized curve gaps":
            "Lag-by-lag gap of each curve divided by the standard error of the real curve "
            "(batch means over time): about 1 is as close as sampling error allows.",
        "Return quantiles":
            "Quantiles of one-day log returns of the real windows of each reference and of "
            "every set, with the 1-day Value at Risk and Expected Shortfall at 99 % as "
            "positive losses (VaR: the 1 % quantile of -r; ES: the mean loss beyond it).",
        "Joint facts":
            "Multi-asset only. mean/calm/stressed_corr: mean pairwise correlation of same-day "
            "returns on all days, and on days whose equal-weight portfolio's trailing 21-day "
            "vol is below / above the real quartiles; tail_dependence: P(r_j < q5_j | r_i < "
            "q5_i) over pairs; corr_mae: mean absolute error of the pairwise correlations; "
            "ew_kurtosis, ew_es99: the equal-weight portfolio's excess kurtosis and 99 % ES. "
            "Ratios near or below 1 are as close as the real data are to themselves.",
        "Memorization":
            "copy_share: exact copies of a training window; close_share: closer to the training "
            "set than 95 % of held-out real windows (0.05 ideal); median_ratio: 1 ideal.",
        "Long horizon":
            "Facts of long paths against the real series cut into segments of the same length "
            "(one starting every year): 'in band' is the share of a fact's entries (lags 1, 5, "
            "10, 20, 50, 100, 250 of the ACF of |r|; 10/50/90 % quantiles of drawdowns; 1/5/20/"
            "60-day kurtosis) inside the range of the single segments. beta gap: distance of "
            "the power-law decay exponent of the ACF of |r| to the whole real series' one. "
            "vol_drift: median vol of the last year over the first, minus one (0 stationary).",
        "Secondary scores (discriminative, predictive)":
            "These learned scores are secondary: on daily returns a small classifier seldom "
            "tells iid noise from real data, so never rank generators by them alone. "
            "discriminative: |accuracy - 0.5| of a GRU classifier (0 best); predictive_mae: "
            "train on the set, test on real (the real (TRTR) row trains on real).",
    }
    parts = ["<h2>Full tables</h2>"]
    for title, frame in _full_tables(evaluation)[len(evaluation.scores):]:
        parts.append(f"<h3>{html.escape(title)}</h3>")
        note = next((text for key, text in notes.items() if title.startswith(key)), None)
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        parts.append(_html_table(frame))
    return "\n".join(parts)


def _header_html(evaluation: Evaluated) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _overview_lines(evaluation))
    return f"<h1>Synthetic returns report</h1>\n<ul>{items}</ul>"


def _about_html(evaluation: Evaluated) -> str:
    lines = _about_lines(evaluation)
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    parts = [f"<h2>About this run</h2>\n<ul>{items}</ul>"]
    regime_vol = _regime_vol_table(evaluation)
    if len(regime_vol):
        parts += ['<p class="note">Annualized vol by regime: the real training windows of '
                  "each regime, and each model's samples conditioned on it.</p>",
                  _html_table(regime_vol)]
    return "\n".join(parts)


def _warnings_html(warnings: list[str]) -> str:
    if not warnings:
        return '<p class="no-warnings">No degenerate, memorization or collapse warnings.</p>'
    lines = "".join(f"<p>&#9888; {html.escape(warning)}</p>" for warning in warnings)
    return f'<div class="warnings"><h2>Warnings</h2>{lines}</div>'


def _ratio_class(ratio: float) -> str:
    """CSS class of a gap in units of the noise floor."""
    if not math.isfinite(ratio):
        return "na"
    if ratio <= GOOD_RATIO:
        return "good"
    return "fair" if ratio <= FAIR_RATIO else "bad"


def _summary_classes(summary: pd.DataFrame, memorization: pd.DataFrame) -> pd.DataFrame:
    """CSS class of every cell of :meth:`Evaluation.summary`: floor ratios by size, the
    memorization columns red where ``memorization`` flags the set."""
    classes = pd.DataFrame("", index=summary.index, columns=summary.columns)
    for column in summary.columns:
        if column.endswith("/floor"):
            classes[column] = [_ratio_class(float(v)) for v in summary[column]]
    if len(memorization):
        flagged = memorization["flagged"].reindex(summary.index, fill_value=False)
        for column in ("memorization", "copies"):
            classes[column] = ["bad" if flag else "good" for flag in flagged]
    return classes


def _format_cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{value:.3g}" if math.isfinite(float(value)) else "-"
    return str(value)


def _html_table(frame: pd.DataFrame, classes: pd.DataFrame | None = None) -> str:
    """An HTML table of ``frame``; ``classes`` (same shape) gives each cell a CSS class."""
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["", *frame.columns])
    rows = []
    for row_position, (name, row) in enumerate(frame.iterrows()):
        cells = [f"<td>{html.escape(str(name))}</td>"]
        for column_position, value in enumerate(row):
            css = "" if classes is None else classes.iat[row_position, column_position]
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{html.escape(_format_cell(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame``, index as the first column."""
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    header = "| " + " | ".join(escape(str(c)) for c in ["set", *frame.columns]) + " |"
    rule = "|---|" + "---:|" * len(frame.columns)
    rows = ["| " + " | ".join([escape(str(name)), *(escape(_format_cell(v)) for v in row)])
            + " |" for name, row in frame.iterrows()]
    return "\n".join([header, rule, *rows])


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _figures_html(evaluation: Evaluated) -> str:
    colors = _set_colors(evaluation)
    n_assets = len(evaluation.assets)
    parts = ["<h2>Figures</h2>"]
    if n_assets > MAX_FIGURE_ASSETS:
        parts.append(f'<p class="note">Per-asset figures show the first {MAX_FIGURE_ASSETS} of '
                     f"{n_assets} assets.</p>")
    for asset, asset_name in enumerate(evaluation.assets[:MAX_FIGURE_ASSETS]):
        parts.append(f"<h3>{html.escape(asset_name)}</h3>")
        parts += [_figure_html(figure(evaluation, asset, colors), caption)
                  for figure, caption in PER_ASSET_FIGURES]
    if evaluation.long_horizon is not None:
        parts.append("<h3>Long horizon</h3>")
        parts += [_figure_html(_long_acf_figure(evaluation, asset, colors),
                               f"{name}: ACF of |r| on long paths (log-log): a straight line is "
                               "a power-law decay; grey = range of the real series' own "
                               "segments of the same length.")
                  for asset, name in enumerate(evaluation.assets[:MAX_FIGURE_ASSETS])]
    if n_assets > 1:
        parts.append("<h3>Cross-asset correlation</h3>")
        parts.append(_figure_html(_correlation_figure(evaluation),
                                  "Correlation matrix of same-day returns, real and each set."))
        parts.append(_figure_html(_joint_bars_figure(evaluation),
                                  "Mean pairwise correlation on calm and stressed days (split "
                                  "by the equal-weight portfolio's trailing 21-day vol at the "
                                  "real quartiles) and lower-tail dependence, per reference: "
                                  "real in black. In a crisis real assets fall together: the "
                                  "stressed bar stands above the calm one."))
    return "\n".join(parts)


def _figure_html(png_base64: str, caption: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{png_base64}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _set_colors(evaluation: Evaluated) -> dict[str, str]:
    """One colour per set, the same in every figure: real in black, generators from tab10."""
    palette = [to_hex(c) for i, c in enumerate(colormaps["tab10"].colors) if i != 7]  # no grey
    colors = {"real": REAL_COLOR}
    for position, name in enumerate(evaluation.samples):
        colors[name] = palette[position % len(palette)]
    return colors


def _plotted_samples(evaluation: Evaluated) -> dict[str, np.ndarray]:
    """The sample sets that can be drawn (degenerate ones are named in the warnings only)."""
    real_std = evaluation.real.std(axis=(0, 1))
    return {name: x for name, x in evaluation.samples.items()
            if degenerate(x, real_std) is None}


def _all_sets(evaluation: Evaluated) -> dict[str, np.ndarray]:
    """The real windows first, then every sample set that can be drawn."""
    return {"real": evaluation.real, **_plotted_samples(evaluation)}


def _new_figure(n_panels: int, height: float = 3.0, columns: int | None = None,
                sharey: bool = False, panel_width: float = 3.4) -> tuple[Figure, list[Axes]]:
    """A figure of ``n_panels`` axes on a grid of ``columns`` (default: one row)."""
    columns = columns or n_panels
    rows = math.ceil(n_panels / columns)
    figure = Figure(figsize=(panel_width * columns, height * rows), dpi=DPI,
                    layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey=sharey).ravel()
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, list(axes[:n_panels])


def _to_base64(figure: Figure) -> str:
    """Encode ``figure`` as a base64 PNG and free it."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    figure.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_curve(axes: Axes, fact: Fact, evaluation: Evaluated, asset: int,
                colors: dict[str, str]) -> None:
    """One curve fact of the catalogue: the band spanned by the floor halves of every
    reference, each reference's curve in black, then every set's curve."""
    lags = np.arange(1, fact.lag_rule(evaluation.real.shape[1]) + 1)
    halves = [fact(ref.windows[part, :, asset]) for ref in evaluation.references.values()
              for part in (ref.first, ref.second)]
    axes.fill_between(lags, np.min(halves, axis=0), np.max(halves, axis=0),
                      color=REAL_BAND_COLOR, label="real floor halves (min-max)")
    styles = ("-", "--", ":", "-.")
    for position, (name, reference) in enumerate(evaluation.references.items()):
        style = styles[position % len(styles)]
        axes.plot(lags, fact(reference.windows[:, :, asset]), style, color=REAL_COLOR,
                  label=f"real ({name})", linewidth=2.0, zorder=3)
    for name, x in _plotted_samples(evaluation).items():
        axes.plot(lags, fact(x[:, :, asset]), color=colors[name], label=name, linewidth=1.2,
                  zorder=2)
    axes.axhline(0.0, color="0.5", linewidth=0.6)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # lags are whole days
    axes.set(title=fact.title, xlabel="lag (days)")


def _curve_figure(figure_name: str) -> Callable[[Evaluated, int, dict[str, str]], str]:
    """The figure of every curve of the catalogue whose ``figure`` is ``figure_name``, one panel
    each (one panel: a wide one)."""

    def draw(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
        curves = [fact for fact in catalogue.FACTS if fact.figure == figure_name]
        figure, axes = _new_figure(len(curves), panel_width=6.0 if len(curves) == 1 else 3.4)
        for panel, fact in zip(axes, curves, strict=True):
            _plot_curve(panel, fact, evaluation, asset, colors)
        _legend_below(figure, axes[0])
        return _to_base64(figure)

    return draw


_acf_figure = _curve_figure("autocorrelation")
_leverage_figure = _curve_figure("leverage")


def _legend_below(figure: Figure, axes: Axes) -> None:
    """The legend of ``axes`` under the panels, so it hides no lag of any curve."""
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                  fontsize="small", frameon=False)


def _long_acf_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    """ACF of |r| of long paths on log-log axes, inside the band of the real segments."""
    long = evaluation.long_horizon
    max_lag = long_max_lag(long.length)
    lags = np.arange(1, max_lag + 1)
    part = slice(asset * max_lag, (asset + 1) * max_lag)
    figure, axes = _new_figure(1, height=3.6, panel_width=6.0)
    axes[0].fill_between(lags, long.band_low["acf_abs"][part], long.band_high["acf_abs"][part],
                         color=REAL_BAND_COLOR, label="real segments (min-max)")
    for name, values in long.values.items():
        is_real = name.startswith("real")
        axes[0].plot(lags, values["acf_abs"][part], "--" if name == "real segments" else "-",
                     color=REAL_COLOR if is_real else colors.get(name, "0.4"), label=name,
                     linewidth=2.0 if is_real else 1.2)
    axes[0].set(xscale="log", yscale="log", title=f"ACF of |r| over {long.length}-day paths",
                xlabel="lag (days)", ylim=(1e-3, None))
    axes[0].legend(fontsize="small")
    return _to_base64(figure)


def _ccdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical P(X >= v) at the positive ``values`` v, thinned to about ``CCDF_POINTS``
    log-spaced ranks; probabilities are shares of all ``values``."""
    positive = np.sort(values[values > 0])[::-1]
    if positive.size == 0:
        return positive, positive
    exceedance = np.arange(1, positive.size + 1) / values.size
    ranks = np.unique(np.geomspace(1, positive.size, CCDF_POINTS).astype(int) - 1)
    return positive[ranks], exceedance[ranks]


def _tail_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    real_std = evaluation.real[:, :, asset].std()
    figure, axes = _new_figure(2, panel_width=4.5)
    for panel, (sign, title) in zip(axes, ((-1.0, "Left tail: -r / real std"),
                                           (1.0, "Right tail: r / real std")), strict=True):
        for name, x in _all_sets(evaluation).items():
            levels, exceedance = _ccdf(sign * x[:, :, asset].ravel() / real_std)
            panel.loglog(levels, exceedance, color=colors[name], label=name,
                         linewidth=2.0 if name == "real" else 1.2)
        panel.set(title=title, xlabel="standardized return", ylabel="P(X >= x)",
                  xlim=(TAIL_PLOT_MIN_STD, None))
    axes[1].legend(fontsize="small", loc="lower left")
    return _to_base64(figure)


def _hill_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    fractions = np.linspace(0.005, 0.10, 40)
    figure, axes = _new_figure(2, panel_width=4.5, sharey=True)
    for panel, tail in zip(axes, ("left", "right"), strict=True):
        for name, x in _all_sets(evaluation).items():
            panel.plot(100 * fractions, facts.hill_curve(x[:, :, asset], fractions, tail),
                       color=colors[name], label=name, linewidth=2.0 if name == "real" else 1.2)
        panel.set(title=f"Hill plot, {tail} tail", xlabel="k, % of returns in the tail",
                  ylabel="tail index")
    axes[1].legend(fontsize="small")
    return _to_base64(figure)


def _qq_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    def standardized(x: np.ndarray) -> np.ndarray:
        values = x[:, :, asset].ravel()
        return (values - values.mean()) / values.std()

    real = standardized(evaluation.real)
    outermost = 0.5 / real.size
    probabilities = expit(np.linspace(logit(outermost), logit(1 - outermost), QQ_POINTS))
    real_quantiles = np.quantile(real, probabilities)
    figure, axes = _new_figure(1, height=3.6, panel_width=4.5)
    for name, x in _plotted_samples(evaluation).items():
        axes[0].plot(real_quantiles, np.quantile(standardized(x), probabilities), ".",
                     color=colors[name], markersize=3, label=name)
    axes[0].axline((0.0, 0.0), slope=1.0, color=REAL_COLOR, linewidth=1.0, label="real")
    axes[0].set(title="QQ plot of standardized 1-day returns", xlabel="real quantile",
                ylabel="generated quantile")
    axes[0].legend(fontsize="small", loc="upper left")
    return _to_base64(figure)


def _histogram_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    horizons = [h for h in HISTOGRAM_HORIZONS if h <= evaluation.real.shape[1]]
    figure, axes = _new_figure(len(horizons), columns=3)
    for panel, horizon_days in zip(axes, horizons, strict=True):
        real = horizon_returns(evaluation.real, horizon_days)[:, asset]
        margin = 0.25 * (real.max() - real.min())
        bins = np.linspace(real.min() - margin, real.max() + margin, HISTOGRAM_BINS)
        for name, x in _all_sets(evaluation).items():
            panel.hist(horizon_returns(x, horizon_days)[:, asset], bins=bins, density=True,
                       histtype="step", color=colors[name], label=name,
                       linewidth=2.0 if name == "real" else 1.2)
        panel.set(title=f"{horizon_days}-day log returns", yscale="log", ylabel="density")
    axes[0].legend(fontsize="small")
    return _to_base64(figure)


def _sample_paths_figure(evaluation: Evaluated, asset: int, colors: dict[str, str]) -> str:
    sets = _all_sets(evaluation)
    figure, axes = _new_figure(len(sets), height=2.4, columns=min(4, len(sets)), sharey=True)
    for panel, (name, x) in zip(axes, sets.items(), strict=True):
        # real windows evenly spread over time; sample sets are exchangeable, take the first ones
        chosen = (np.linspace(0, len(x) - 1, SAMPLE_PATHS_PER_SET).astype(int) if name == "real"
                  else np.arange(min(SAMPLE_PATHS_PER_SET, len(x))))
        log_returns = x[chosen, :, asset]  # (paths, length)
        prices = prices_from_returns(log_returns[..., None], 100.0)[..., 0]
        panel.plot(prices.T, color=colors[name], linewidth=0.9, alpha=0.8)
        panel.set(title=name, xlabel="day")
    axes[0].set_ylabel("price (start 100)")
    return _to_base64(figure)


def _correlation_figure(evaluation: Evaluated) -> str:
    sets = _all_sets(evaluation)
    n_assets = len(evaluation.assets)
    figure, axes = _new_figure(len(sets), height=3.2, columns=min(4, len(sets)))
    for panel, (name, x) in zip(axes, sets.items(), strict=True):
        correlation = facts.cross_correlation(x)
        image = panel.imshow(correlation, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
        panel.set(title=name, xticks=range(n_assets), yticks=range(n_assets))
        if n_assets <= ANNOTATED_HEATMAP_MAX_ASSETS:
            panel.set_xticklabels(evaluation.assets, rotation=90, fontsize="small")
            panel.set_yticklabels(evaluation.assets, fontsize="small")
            for (row, column), value in np.ndenumerate(correlation):
                panel.text(column, row, f"{value:.2f}", ha="center", va="center",
                           fontsize="small", color="white" if abs(value) > 0.5 else "black")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return _to_base64(figure)


def _joint_bars_figure(evaluation: Evaluated) -> str:
    colors = _set_colors(evaluation)
    figure, axes = _new_figure(len(evaluation.joint), height=3.0, panel_width=5.0)
    columns = ["calm_corr", "stressed_corr", "tail_dependence"]
    for panel, (reference, table) in zip(axes, evaluation.joint.items(), strict=True):
        values = table.values[columns]
        width = 0.8 / len(values)
        for position, (name, row) in enumerate(values.iterrows()):
            panel.bar(np.arange(len(columns)) + position * width, row.to_numpy(dtype=float),
                      width, color=colors.get(name, REAL_COLOR), label=name)
        panel.set(title=reference, xticks=np.arange(len(columns)) + 0.4 - width / 2,
                  ylim=(min(0.0, float(np.nanmin(values.to_numpy(dtype=float)))), 1.0))
        panel.set_xticklabels(["calm corr", "stressed corr", "tail dependence"])
    _legend_below(figure, axes[0])
    return _to_base64(figure)


PER_ASSET_FIGURES: list[tuple[Callable[[Evaluated, int, dict[str, str]], str], str]] = [
    (_acf_figure, "Autocorrelation of r, |r| and r²: real references in black (solid: "
                  "in-sample, dashed: out-of-sample), grey band = range of their noise-floor "
                  "halves. Volatility clustering is reproduced when the |r| and r² curves stay "
                  "in or near the band."),
    (_leverage_figure, "Leverage effect: correlation of today's return with future squared "
                       "returns (negative for equities); band as above."),
    (_tail_figure, "Tails on log-log axes: share of days beyond a move of x real standard "
                   "deviations. A straight real line is a power-law tail; a generator falling "
                   "off it early has too thin tails."),
    (_hill_figure, "Hill estimator of the tail index against the share k of the largest "
                   "losses (left) and gains (right) it uses: the real index is flat near 3, a "
                   "power-law tail; a thin tail (Gaussian) shows high values at small k that "
                   "keep falling as k grows."),
    (_qq_figure, "Each set's 1-day returns, standardized by its own mean and std, against the "
                 "real ones: points on the black diagonal have the real shape; an S bending "
                 "towards the horizontal means too thin tails."),
    (_histogram_figure, "Densities of non-overlapping h-day returns inside windows (log scale "
                        "shows the tails): real returns become more Gaussian as h grows."),
    (_sample_paths_figure, "A few windows as prices starting at 100: real windows spread over "
                           "time, and the first samples of each set."),
]
