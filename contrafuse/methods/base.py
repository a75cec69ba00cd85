"""The one interface every fusion method implements, and the method registry."""

from __future__ import annotations

import inspect
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ContrafuseError
from ..registry import Registry


@dataclass(frozen=True)
class MethodOption:
    """A constructor keyword that a method offers on the command line as ``--keyword``
    (underscores become dashes; ``switch``: a flag without a value that passes True). Methods
    sharing a keyword share the flag."""
    keyword: str
    help: str
    type: type = str
    choices: tuple = ()
    metavar: str | None = None
    switch: bool = False
    default: object = None  # shown in the help, per method


class FusionMethod(ABC):
    """Fuse two registered grey images of equal size, float32 in [0, 1], into one.

    ``first`` is the intensity/target modality (infrared, PET/SPECT luminance, or the first
    focus image), ``second`` the detail modality (visible, MRI, second focus image). Colour is
    handled outside the method (:func:`contrafuse.api.fuse` fuses luminance, re-attaches chroma).
    """

    #: registry name, set by :func:`register_method`
    name: str = ""
    #: one line shown by ``contrafuse methods``
    description: str = ""
    #: the method fuses RGB itself (:meth:`fuse_rgb`); otherwise colour is fused on Y outside it
    fuses_rgb: bool = False
    #: how that fused Y gets the colour source's chroma back (:func:`contrafuse.io.ycbcr_to_rgb`'s rule)
    recolour: str = "keep_luma"
    #: a PyTorch network: worth keeping loaded (worker, web app) and exportable to ONNX
    uses_torch: bool = False

    @classmethod
    def cli_options(cls) -> list[MethodOption]:
        """The options this method takes from the command line (default: none)."""
        return []

    @abstractmethod
    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Return the fused grey image, float32 in [0, 1], of the inputs' shape."""

    def fuse_luma(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Fuse the luma of two sources, grey ``(H, W)`` or RGB ``(H, W, 3)`` (default: their BT.601
        Y through :meth:`fuse_grey`; a method whose reference protocol derives grey from colour
        its own way overrides this)."""
        from ..io import luminance
        return self.fuse_grey(luminance(first), luminance(second))

    def fuse_rgb(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """For methods with ``fuses_rgb``: fuse two (H, W, 3) [0, 1] images into one."""
        raise NotImplementedError

    def check_inputs(self, first: np.ndarray, second: np.ndarray, labels: tuple[str, str]) -> None:
        """Refuse inputs that cannot be right for this method (default: accept); ``first`` and
        ``second`` are the [0, 1] images as read, grey or RGB, ``labels`` name them in errors."""


METHODS: Registry[type[FusionMethod]] = Registry("fusion method")


def register_method(name: str):
    """Class decorator: register a :class:`FusionMethod` subclass under ``name``."""
    def decorator(cls: type[FusionMethod]) -> type[FusionMethod]:
        cls.name = name
        return METHODS.register(name)(cls)
    return decorator


def create_method(name: str, **options: Any) -> FusionMethod:
    """Instantiate the registered method ``name`` with keyword ``options`` (unknown options and
    options of the wrong type are one-line errors). ``recolour``, which every method takes, replaces
    its rule for re-attaching a colour source's chroma (:data:`contrafuse.io.RECOLOUR_RULES`), so that
    the rows of one comparison can share a rule."""
    from ..io import RECOLOUR_RULES

    recolour = options.pop("recolour", None)
    if recolour is not None and recolour not in RECOLOUR_RULES:
        raise ContrafuseError(None, f"method {name!r}: unknown recolour rule {recolour!r} "
                              f"(choose from {', '.join(RECOLOUR_RULES)})")
    method = _build(name, options)
    if recolour is not None:
        method.recolour = recolour
    return method


def _build(name: str, options: dict) -> FusionMethod:
    cls = METHODS.get(name)
    accepted = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            known = ", ".join(accepted) or "none"
            raise ContrafuseError(None, f"method {name!r} has no option {unknown[0]!r} (options: {known})")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ContrafuseError(None, f"method {name!r}: bad options {options!r} ({exc})") from None


class MethodCache:
    """Methods built once and kept, so learned models load their weights once per process (the web
    app, the CLI worker). Keeps the ``size`` most recently used; an option naming a file (such as
    ``weights``) is keyed by the file's size and modification time too, so a replaced file is read again."""

    def __init__(self, size: int = 4):
        self.size = size
        self._methods: OrderedDict[tuple, FusionMethod] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, options: dict) -> tuple:
        def version(value):
            if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
                stat = os.stat(value)
                return (os.path.realpath(value), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            return value
        return (name, tuple(sorted((k, version(v)) for k, v in options.items())))

    def get(self, name: str, **options: Any) -> FusionMethod:
        """The method :func:`create_method` would build, built at most once."""
        key = self._key(name, options)
        with self._lock:
            if key not in self._methods:
                self._methods[key] = create_method(name, **options)
                while len(self._methods) > self.size:
                    self._methods.popitem(last=False)
            self._methods.move_to_end(key)
            return self._methods[key]

    def names(self) -> list[str]:
        return [key[0] for key in self._methods]
