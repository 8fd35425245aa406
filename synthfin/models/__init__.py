"""Generators behind one interface, found by name through the registry.

Every module of this package is imported here, so a generator in a new file registers itself:
adding one is one file (and its test); see the README's "Add a generator".
"""

import importlib
import pkgutil

from synthfin.models.base import (
    ContextSampler,
    DataSpec,
    Generator,
    GeneratorConfig,
    available_generators,
    continuing_models,
    get_generator,
    register,
)
from synthfin.models.training import TorchConfig, TorchGenerator

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ContextSampler", "DataSpec", "Generator", "GeneratorConfig", "TorchConfig",
           "TorchGenerator", "available_generators", "continuing_models", "get_generator",
           "register"]
