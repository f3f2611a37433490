"""Import heavy libraries on first use.

scipy costs about 76 MB of resident memory per process. The web workers import the training code only
to read statuses, so they must not pay for scipy unless they really train; the nightly trainer does.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands in for a module until an attribute is first read."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)
