"""Package ``__init__`` files that load each public name from its submodule on first use (as diffusers' own
``__init__`` does), so that importing one light submodule (``mvtrack.scenes.config``, ``mvtrack.geometry.arrays``)
does not import torch through its package."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, sources: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose public names are ``sources[name] = submodule``."""

    def __getattr__(name: str):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{sources[name]}")
        value = getattr(module, name)
        setattr(importlib.import_module(package), name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(sources))

    return __getattr__, __dir__
