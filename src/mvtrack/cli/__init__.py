"""The ``mvtrack`` command line: one module per group of commands (data, prepare, train, generate, evaluate,
analysis), each command parsing its options, calling one library function and printing. ``_app`` holds the
application, the one error handler and the shared helpers."""

from . import analysis, data, evaluate, generate, prepare, train  # noqa: F401  (each registers its commands on ``app``)
from ._app import USER_ERRORS, app

__all__ = ["USER_ERRORS", "app"]
