"""Extension through the public API: the README's "Add a generator" example, run as written."""

import re
from pathlib import Path

import numpy as np

import synthfin as sf
from synthfin.jobs.config import load_pipeline_config

README = Path(__file__).parents[2] / "README.md"


def readme_generator() -> None:
    section = README.read_text().split("## Add a generator", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_generator"})


def test_the_readme_generator_registers_fits_samples_and_round_trips(sp500_prices, tmp_path):
    readme_generator()
    assert "studentt" in sf.available_generators()
    synth = sf.Synthesizer("studentt", window_len=32, df=4).fit(sp500_prices.loc["2010":])
    scenarios = synth.sample(200, length=50, seed=0)
    assert scenarios.returns.shape == (200, 50, 1) and np.isfinite(scenarios.returns).all()
    crash = synth.crash(20, 10, shock_day=3, seed=0)  # no context sampler: regime-conditioned
    np.testing.assert_array_equal(crash.returns[:, 3, 0], -0.10)
    synth.save(tmp_path / "synth")
    loaded = sf.Synthesizer.load(tmp_path / "synth")
    np.testing.assert_array_equal(loaded.sample(5, seed=1).returns, synth.sample(5, seed=1).returns)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: ext\nmodels:\n  studentt: {df: 4}\n")
    assert load_pipeline_config(pipeline).models == {"studentt": {"df": 4}}
