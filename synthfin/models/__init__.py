"""Generators behind one interface, found by name through the registry."""

from synthfin.models import (  # noqa: F401  (importing registers the generators)
    autoregressive,
    baselines,
    cvae,
    timegan,
)
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
