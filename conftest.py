"""Marks for the whole repository (tests and notebooks), loaded whatever paths pytest is given."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every notebook is ``heavy`` (``pytest -m heavy`` runs them), guarded by nbmake's own
    per-cell timeout only: pytest-timeout's per-test limit would cut a whole notebook short."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.heavy)
            item.add_marker(pytest.mark.timeout(0))
