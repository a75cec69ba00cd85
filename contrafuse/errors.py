"""Errors the toolkit reports to users as one line (no traceback unless ``--debug``)."""

from __future__ import annotations

import math
import os


class ContrafuseError(Exception):
    """A problem with the user's input or environment, reported as ``<where>: <problem>``.

    The message is always one line: line breaks inside ``problem`` (e.g. a parser's multi-line
    message) are folded into spaces, and ones in a file name are shown escaped.
    """

    def __init__(self, where: str | os.PathLike | None, problem: str):
        self.where = None if where is None else os.fspath(where).replace("\n", "\\n").replace("\r", "\\r")
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.where}: {self.problem}" if self.where else self.problem)


def positive_setting(variable: str, default, what: str, parse=float):
    """The environment ``variable`` parsed by ``parse`` (``default`` when unset); anything that is
    not a positive finite number (``0``, ``abc``, ``inf``, ``nan``) is a one-line error naming the
    variable and ``what`` it must be."""
    value = os.environ.get(variable)
    if value is None:
        return default
    try:
        number = parse(value)
        usable = math.isfinite(number) and number > 0
    except (ValueError, OverflowError, TypeError):  # "abc"; int(float("inf")); a parser giving None
        usable = False
    if not usable:
        raise ContrafuseError(variable, f"must be a positive {what}, not {value!r}")
    return number
