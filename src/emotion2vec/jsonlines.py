"""JSON Lines read one object per line, with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import DataError

__all__ = ["json_objects"]


def json_objects(lines: Iterable[str], where: object) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of ``lines`` (an open text file).

    Raises:
        DataError: ``<where>:<line>: not valid JSON (...)`` or ``expected a JSON object``.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row
