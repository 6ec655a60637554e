"""Node Formats of the simulated tree and the check of a leaf value against its Format.

Leaf values are ``str`` for every Format except ``bin``, which is ``bytes``.
A value sent with Format ``b64`` is decoded and stored as ``bin`` (§6.3); Get
then returns the raw bytes with Format ``bin`` and the codec base64-encodes
them on the wire.
"""
from __future__ import annotations

import base64
import binascii
import re

from dmwsi.sim.tree.status import Status, TreeCommandError

INTERIOR_FORMAT = "node"
LEAF_FORMATS = frozenset({"b64", "bin", "bool", "chr", "int", "null", "xml", "float", "date", "time"})
DEFAULT_LEAF_TYPE = "text/plain"

_INT_VALUE = re.compile(r"[+-]?\d+")
_DATE_VALUE = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_TIME_VALUE = re.compile(r"\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def coerce_value(format_: str, value: str | bytes | None) -> tuple[str, str | bytes]:
    """Validate a leaf value against its Format; return (stored format, stored value)."""
    if format_ not in LEAF_FORMATS:
        raise TreeCommandError(Status.UNSUPPORTED_MEDIA_TYPE, f"unsupported leaf format {format_!r}")
    if format_ == "b64":
        try:
            return "bin", base64.b64decode(value or b"", validate=True)
        except (binascii.Error, ValueError) as error:
            raise TreeCommandError(Status.BAD_REQUEST, f"invalid base64 data: {error}") from error
    if format_ == "bin":
        return "bin", value.encode("utf-8") if isinstance(value, str) else (value or b"")
    text = value.decode("utf-8") if isinstance(value, bytes) else (value or "")
    valid = {
        "null": lambda: text == "",
        "int": lambda: bool(_INT_VALUE.fullmatch(text.strip())),
        "bool": lambda: text.strip().lower() in ("true", "false"),
        "float": lambda: _is_float(text),
        "date": lambda: bool(_DATE_VALUE.fullmatch(text.strip())),
        "time": lambda: bool(_TIME_VALUE.fullmatch(text.strip())),
    }.get(format_, lambda: True)()
    if not valid:
        raise TreeCommandError(Status.BAD_REQUEST, f"value {text!r} is not valid for format {format_}")
    if format_ == "bool":
        text = text.strip().lower()
    elif format_ in ("int", "float", "date", "time"):
        text = text.strip()
    return format_, text


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
