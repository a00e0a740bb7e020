"""Reading JSON the way Node's JSON.parse does, and saying what is wrong, for messages.

Its own small module so that migrate, list and the report, which read JSON written by
other programs, do not import the metrics summary (and msgspec with it).
"""

from __future__ import annotations

import json
from typing import Any


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# JSON.parse's grammar: Python's json also takes NaN and Infinity.
JSON_PARSE = json.JSONDecoder(parse_constant=reject_constant)


def json_error_text(exc: json.JSONDecodeError, *, line: bool = True) -> str:
    """What is wrong and where: ``Expecting value at line 2 column 1``.

    Some of json's messages end in "at" themselves ("Unterminated string starting
    at"); the place follows once, never "at at".
    """
    where = f"line {exc.lineno} column {exc.colno}" if line else f"column {exc.colno}"
    return f"{exc.msg.removesuffix(' at')} at {where}"


def json_kind(value: object) -> str:
    """What a parsed JSON value is, for messages: "null", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
