"""Generators behind one interface, found by name through the registry."""

from synthfin.models import baselines  # noqa: F401  (registers garch, bootstrap, gaussian)
from synthfin.models.base import (
    DataSpec,
    Generator,
    GeneratorConfig,
    available_generators,
    get_generator,
    register,
)

__all__ = ["DataSpec", "Generator", "GeneratorConfig", "available_generators", "get_generator",
           "register"]
