"""Progress bars (tqdm) drawn only where someone watches: on a terminal, and not with ``--quiet``.

A bar written into a redirected log is a stream of carriage returns that fills it; so every bar of
the package goes through :func:`bar`, which leaves it out when standard error is not a terminal
or when the command line asked for ``--quiet`` (:data:`quiet`).
"""

from __future__ import annotations

import sys

#: set by the command line's ``--quiet`` for the run in progress
quiet = False


def shown() -> bool:
    """Whether a bar would be drawn now."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not quiet and bool(isatty and isatty())


def bar(iterable=None, *, hide: bool = False, **kwargs):
    """A ``tqdm`` bar on standard error, disabled when ``hide``, under ``--quiet`` or off a terminal
    (a disabled bar still iterates, and its ``write`` still prints)."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=hide or not shown(), **kwargs)
