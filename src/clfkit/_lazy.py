"""Lazy package attributes: ``clfkit.train.fit`` imports torch only when it is first used.

A package lists what it offers in a literal ``_LAZY = {"name": "clfkit.module.path", ...}`` and sets
``__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)``.  Each name is looked up in its module with
``getattr`` after importing that module, never by importing ``package.name``, so a public name that equals a
submodule's name (``fit`` / ``fit.py`` once raised RecursionError) cannot shadow or recurse.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` serving ``names`` (public name → defining module)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)  # next time a plain attribute, no lookup
        return value

    def __dir__() -> list[str]:
        return sorted({*names, *vars(importlib.import_module(package))})

    return __getattr__, __dir__
