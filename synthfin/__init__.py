"""synthfin: realistic synthetic financial time series."""

from __future__ import annotations

__version__ = "0.1.0"
