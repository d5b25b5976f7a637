"""Optional packages: imported where needed, and when missing a one-line error naming the extra
that installs them (``pip install 'dfdetect[cloud]'``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from dfdetect.utils.errors import UserError


class MissingExtraError(UserError, ImportError):
    """An optional package is not installed."""


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """``module`` imported, or a ``MissingExtraError`` that names ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but something it needs is broken: show that
        raise MissingExtraError(
            f"{needed_for} needs the optional package {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'dfdetect[{extra}]'"
        ) from None
