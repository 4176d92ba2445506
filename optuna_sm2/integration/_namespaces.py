"""Lightning's two import names: ``lightning.pytorch`` (the current package) and
``pytorch_lightning`` (its older name, still shipped and imported by older code).

A Trainer of one namespace refuses a callback of the other (``is_overridden`` raises "Expected a
parent", Optuna issue 4689). :func:`callback_base` is one ``Callback`` class that is a
``Callback`` of every namespace installed, so that one SM² callback serves whichever Trainer the
user built.
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
"""Lightning's import names, the current one first."""


def installed() -> tuple[ModuleType, ...]:
    """The namespaces of :data:`NAMESPACES` that import, the current one first.

    Raises:
        ModuleNotFoundError: neither is installed (``name`` is ``"lightning"``, the package
            to install).
    """
    found = []
    for name in NAMESPACES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.split(".")[0]):
                raise  # a namespace that is there but misses one of its own dependencies
    if not found:
        raise ModuleNotFoundError("No module named 'lightning'", name="lightning")
    return tuple(found)


def callback_base() -> type:
    """One ``Callback`` class that every installed namespace's Trainer accepts: that namespace's
    ``Callback`` when only one is installed, else a class deriving from each (their hooks are the
    same: ``pytorch_lightning`` mirrors ``lightning.pytorch``)."""
    bases: tuple[type, ...] = tuple(module.Callback for module in installed())
    if len(bases) == 1:
        return bases[0]
    return type("Callback", bases, {"__module__": __name__})
