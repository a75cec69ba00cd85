"""Fusion methods behind one interface; ``create_method(name)`` builds any of them.

Other installed packages add methods through the entry-point group ``contrafuse.methods``: each
entry point names a module (or an object in it) whose import registers its methods with
:func:`register_method`, e.g. in the package's ``pyproject.toml``::

    [project.entry-points."contrafuse.methods"]
    mymethod = "mypackage.fusion"

They then appear in the CLI, the web app and ``benchmark`` like the built-in ones.
"""

import sys
from importlib.metadata import entry_points

from . import classical, learned  # noqa: F401  (registers the methods)
from .base import METHODS, FusionMethod, MethodCache, MethodOption, create_method, register_method

#: the method used when none is named
DEFAULT_METHOD = "coconet"

#: the entry-point group through which other packages register methods
ENTRY_POINT_GROUP = "contrafuse.methods"


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break contrafuse
            print(f"contrafuse: warning: method plug-in {entry.name!r} ({entry.value}) not loaded: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


_load_plugins()

__all__ = ["DEFAULT_METHOD", "ENTRY_POINT_GROUP", "METHODS", "FusionMethod", "MethodCache", "MethodOption",
           "create_method", "register_method"]
