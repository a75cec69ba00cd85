"""Fusion methods behind one interface; ``create_method(name)`` builds any of them."""

from .base import METHODS, FusionMethod, create_method, register_method
from . import classical, learned  # noqa: F401  (registers the methods)

#: the method used when none is named
DEFAULT_METHOD = "gff"

__all__ = ["METHODS", "FusionMethod", "create_method", "register_method", "DEFAULT_METHOD"]
