"""Errors the toolkit reports to users as one line (no traceback unless ``--debug``)."""

from __future__ import annotations

import os


class ContrafuseError(Exception):
    """A problem with the user's input or environment, reported as ``<where>: <problem>``."""

    def __init__(self, where: str | os.PathLike | None, problem: str):
        self.where = None if where is None else os.fspath(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}" if self.where else problem)
