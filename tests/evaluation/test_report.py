"""Tests of synthfin.evaluation.report: the files an Evaluation saves and what a reader sees."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synthfin.evaluation.evaluate import evaluate
from synthfin.evaluation.report import write_report
from synthfin.evaluation.scores import Reference

torch.set_num_threads(1)

N_WINDOWS, WINDOW_LEN = 200, 32
UNIVARIATE_FIGURE_KINDS = 7  # acf, leverage, tails, hill, qq, histograms, sample paths
MEMORIZATION_TRAIN_WINDOWS = 150


def _garch_t_returns(n_days: int, n_assets: int, seed: int) -> np.ndarray:
    """GARCH(1,1)-like log returns with Student-t (5 dof) shocks correlated at 0.6 across
    assets, shape (n_days, n_assets)."""
    rng = np.random.default_rng(seed)
    correlation = np.full((n_assets, n_assets), 0.6) + 0.4 * np.eye(n_assets)
    shocks = rng.standard_t(5, size=(n_days, n_assets)) @ np.linalg.cholesky(correlation).T
    shocks /= np.sqrt(5 / 3)  # unit variance
    omega, alpha, beta = 1e-6, 0.1, 0.85
    variance = np.full(n_assets, omega / (1 - alpha - beta))
    returns = np.empty((n_days, n_assets))
    for day in range(n_days):
        returns[day] = np.sqrt(variance) * shocks[day]
        variance = omega + alpha * returns[day] ** 2 + beta * variance
    return returns


def _save_report(directory: Path, n_assets: int):
    """Evaluate a Gaussian set and a set copying training windows; save everything."""
    real = _garch_t_returns(N_WINDOWS * WINDOW_LEN, n_assets, seed=n_assets)
    real = real.reshape(N_WINDOWS, WINDOW_LEN, n_assets)
    rng = np.random.default_rng(1)
    samples = {"gaussian": rng.normal(0.0, real.std(), size=(300, WINDOW_LEN, n_assets)),
               "copy": real[:100].copy()}
    train, held_out = real[:MEMORIZATION_TRAIN_WINDOWS], real[MEMORIZATION_TRAIN_WINDOWS:]
    references = {"in_sample": Reference.blocked(train, stride=WINDOW_LEN),
                  "out_of_sample": Reference.split(held_out[:25], held_out[25:])}
    evaluation = evaluate(references, samples, train=train, held_out=held_out, neural=False)
    evaluation.save(directory)
    return evaluation


@pytest.fixture(scope="module")
def univariate_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("univariate")
    _save_report(directory, n_assets=1)
    return directory


@pytest.fixture(scope="module")
def two_asset_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("two_assets")
    _save_report(directory, n_assets=2)
    return directory


def _images(html: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)


def test_save_writes_report_html_md_and_metrics_without_temp_files(univariate_report: Path):
    names = sorted(p.name for p in univariate_report.iterdir())
    assert names == ["metrics.json", "report.html", "report.md"]


def test_metrics_json_parses_without_nan(univariate_report: Path):
    def reject(constant: str) -> None:
        raise AssertionError(f"metrics.json holds {constant}")

    metrics = json.loads((univariate_report / "metrics.json").read_text(), parse_constant=reject)
    assert set(metrics["n_samples"]) == {"gaussian", "copy"}


def test_html_is_self_contained_with_one_image_per_figure_kind(univariate_report: Path):
    html = (univariate_report / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html
    assert len(_images(html)) >= UNIVARIATE_FIGURE_KINDS
    assert len(html) < 3_000_000


def test_html_names_every_generator_and_warns_about_the_copy_first(univariate_report: Path):
    html = (univariate_report / "report.html").read_text()
    assert "gaussian" in html and "copy" in html
    warning = html.index("MEMORIZATION: &#x27;copy&#x27;")
    assert warning < html.index("<h2>Summary")
    assert "MEMORIZATION: &#x27;gaussian&#x27;" not in html


def test_summary_marks_the_copying_set_red_and_colour_codes_floor_ratios(
        univariate_report: Path):
    html = (univariate_report / "report.html").read_text()
    summary = html[html.index("<h2>Summary"):html.index("<h2>Full tables")]
    copy_row = re.search(r"<tr><td>copy</td>.*?</tr>", summary).group(0)
    gaussian_row = re.search(r"<tr><td>gaussian</td>.*?</tr>", summary).group(0)
    assert copy_row.count('class="bad"') >= 2  # memorization and copies
    # iid Gaussian returns miss volatility clustering: acf_abs far beyond the floor
    assert 'class="bad"' in gaussian_row
    assert all(css in {"good", "fair", "bad", "na"}
               for css in re.findall(r'class="(\w+)"', copy_row + gaussian_row))


def test_markdown_holds_every_table_with_the_noise_floor_row(univariate_report: Path):
    markdown = (univariate_report / "report.md").read_text()
    for title in ("## Summary", "## Raw gaps", "## Standardized curve gaps", "## Memorization"):
        assert title in markdown
    assert "| noise floor |" in markdown
    assert "MEMORIZATION: 'copy'" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| set | acf_r"))
    rule = markdown.splitlines()[markdown.splitlines().index(header) + 1]
    assert header.count("|") == rule.count("|")


def test_two_assets_add_correlation_heatmaps_and_both_asset_sections(two_asset_report: Path):
    html = (two_asset_report / "report.html").read_text()
    assert "Cross-asset correlation" in html
    assert "<h3>asset_0</h3>" in html and "<h3>asset_1</h3>" in html
    assert len(_images(html)) == 2 * UNIVARIATE_FIGURE_KINDS + 2  # heat maps, joint bars


def test_secondary_scores_are_reported_as_secondary_and_figures_capped_at_four_assets(
        tmp_path: Path):
    rng = np.random.default_rng(2)
    real = 0.01 * rng.standard_t(4, size=(40, 8, 6))
    evaluation = evaluate({"reference": Reference.blocked(real, stride=8)},  # independent
                          {"gaussian": rng.normal(0.0, 0.01, size=(40, 8, 6))}, neural=False)
    evaluation.secondary = pd.DataFrame({"discriminative": {"gaussian": 0.1},
                                         "predictive_mae": {"gaussian": 0.011,
                                                            "real (TRTR)": 0.010}})
    html = write_report(evaluation, tmp_path).read_text()
    assert "These learned scores are secondary" in html
    assert "real (TRTR)" in (tmp_path / "report.md").read_text()
    assert "<h3>asset_3</h3>" in html and "<h3>asset_4</h3>" not in html
    assert len(_images(html)) == 4 * UNIVARIATE_FIGURE_KINDS + 2


@pytest.fixture(scope="module")
def cited_report(tmp_path_factory: pytest.TempPathFactory, sp500_windows):
    """A report of a prepared data set (evaluate_windows), which knows its provenance."""
    from synthfin.evaluation.evaluate import evaluate_windows

    rng = np.random.default_rng(0)
    real = sp500_windows.real_windows("train")
    samples = {"gaussian": rng.normal(0.0, real.std(), size=(400, *real.shape[1:]))}
    evaluation = evaluate_windows(sp500_windows, samples, neural=False, seed=7)
    directory = tmp_path_factory.mktemp("cited")
    evaluation.save(directory)
    return evaluation, directory


def test_report_says_period_splits_regimes_seed_version_and_commit(cited_report, sp500_windows):
    from synthfin import __version__

    evaluation, directory = cited_report
    for name in ("report.html", "report.md"):
        text = (directory / name).read_text()
        assert "About this run" in text and "Reading a red cell" in text
        for first, last in sp500_windows.split_dates.values():
            assert f"{first} to {last}" in text
        calm_cut = sp500_windows.regimes.thresholds_[0]
        assert f"calm below {calm_cut:.1%}" in text
        assert "Seed: 7" in text and f"synthfin {__version__}, commit " in text
        assert "Annualized vol by regime" in text and "real (train windows)" in text
    about = json.loads((directory / "metrics.json").read_text())["about"]
    assert about["commit"] and about["seed"] == 7
    vol = about["regime_vol"]["real (train windows)"]
    assert vol["calm"] < vol["normal"] < vol["stressed"]


def test_return_quantiles_and_var_es_sit_beside_the_real_ones(cited_report):
    evaluation, directory = cited_report
    table = evaluation.return_quantiles()
    real = evaluation.references["in_sample"].windows.ravel()
    row = table.loc[("real (in_sample)", "SP500")]
    np.testing.assert_allclose(row["q1%"], np.quantile(real, 0.01))
    np.testing.assert_allclose(row["VaR 99%"], -np.quantile(real, 0.01))
    assert row["ES 99%"] > row["VaR 99%"] > 0
    assert table.loc[("gaussian", "SP500"), "q0.1%"] > row["q0.1%"]  # thin Gaussian tails
    markdown = (directory / "report.md").read_text()
    assert "| real (out_of_sample) |" in markdown and "VaR 99%" in markdown


def test_curve_legends_sit_under_the_panels_hiding_no_lag(monkeypatch, cited_report):
    from synthfin.evaluation import report

    evaluation, _ = cited_report
    drawn = []
    monkeypatch.setattr(report, "_to_base64", lambda figure: drawn.append(figure) or "")
    colors = report._set_colors(evaluation)
    report._acf_figure(evaluation, 0, colors)
    report._leverage_figure(evaluation, 0, colors)
    for figure in drawn:
        assert all(axes.get_legend() is None for axes in figure.axes)  # none inside a panel
        assert len(figure.legends) == 1
