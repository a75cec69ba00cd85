"""Fusion methods behind one interface; ``create_method(name)`` builds any of them."""

from . import classical, learned  # noqa: F401  (registers the methods)
from .base import METHODS, FusionMethod, MethodCache, MethodOption, create_method, register_method

#: the method used when none is named
DEFAULT_METHOD = "coconet"

__all__ = ["DEFAULT_METHOD", "METHODS", "FusionMethod", "MethodCache", "MethodOption", "create_method", "register_method"]
