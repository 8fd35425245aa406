"""synthfin: realistic synthetic financial time series.

``import synthfin as sf`` is all a notebook needs; names load on first use, so the command line
starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_prices": "synthfin.data.sources",
    "log_returns": "synthfin.data.returns",
    "prices_from_returns": "synthfin.data.returns",
    "ReturnScaler": "synthfin.data.scaling",
    "RegimeModel": "synthfin.data.conditions",
    "WindowData": "synthfin.data.windows",
    "make_windows": "synthfin.data.windows",
    "Generator": "synthfin.models",
    "GeneratorConfig": "synthfin.models",
    "TorchGenerator": "synthfin.models",
    "TorchConfig": "synthfin.models",
    "ContextSampler": "synthfin.models",
    "register": "synthfin.models",
    "get_generator": "synthfin.models",
    "available_generators": "synthfin.models",
    "evaluate": "synthfin.evaluation",
    "evaluate_windows": "synthfin.evaluation",
    "FACTS": "synthfin.stats",
    "LONG_FACTS": "synthfin.stats",
    "Fact": "synthfin.stats",
    "fact_statistics": "synthfin.stats",
    "Synthesizer": "synthfin.synthesizer",
    "Scenarios": "synthfin.scenarios.paths",
    "OHLCVModel": "synthfin.scenarios.ohlcv",
    "signal_strategy": "synthfin.backtest.adapters",
    "stress_test": "synthfin.backtest.harness",
    "moving_average_crossover": "synthfin.backtest.harness",
    "volatility_targeting": "synthfin.backtest.harness",
    "risk_backtest": "synthfin.backtest.risk",
    "wide_prices": "synthfin.data.files",
    "read_bars": "synthfin.data.files",
    "validate_prices": "synthfin.data.validation",
    "Evaluation": "synthfin.evaluation",
    "SynthfinError": "synthfin.errors",
    "DataError": "synthfin.errors",
    "ModelError": "synthfin.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'synthfin' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
