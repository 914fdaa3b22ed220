"""mvtrack: 4D-consistent, camera-controlled multi-view video generation supervised by multi-view point tracks.

Packages, bottom to top (each imports only those below it; docs/architecture.md, tests/test_layers.py):
``geometry`` -> ``evaluation`` (numpy only) | ``data`` -> ``viz``, ``scenes`` -> ``models`` -> ``tracking``,
``pipelines`` -> ``training`` -> ``runners`` -> ``cli``. The calls a Python user starts from are re-exported here
(loaded on first use, so ``import mvtrack`` stays cheap): ``mvtrack.rerender``, ``mvtrack.load_pipeline``.
"""

__version__ = "0.1.0"

_API = ("rerender", "load_pipeline")


def __getattr__(name: str):
    if name in _API:
        from mvtrack import api

        return getattr(api, name)
    raise AttributeError(f"module 'mvtrack' has no attribute {name!r}")
