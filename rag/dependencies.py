"""Optional packages, imported only when the backend that needs them is chosen; a missing one is
a `DependencyMissing` that says what to install, not an ImportError traceback."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from rag.errors import DependencyMissing


def require(module: str, *, needed_for: str, install: str) -> ModuleType:
    """Import `module`, e.g. `require("openai", needed_for="the openai LLM", install="openai")`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyMissing(
            f"{needed_for} needs the package {install}: pip install {install}"
        ) from None


def require_installed(module: str, *, needed_for: str, install: str) -> None:
    """Like `require`, without importing `module` (whose import may be what crashes)."""
    if importlib.util.find_spec(module) is None:
        raise DependencyMissing(f"{needed_for} needs the package {install}: pip install {install}")
