"""Device selectors: ``Man=Acme and Mod=Phone1 and FwV<2.0``.

A selector is a conjunction of ``Field op value`` clauses over the fields
of a registered device.  This module parses and validates them and defines
the comparison semantics; the store compiles clauses to SQL (and registers
:func:`version_key` as an SQL function so version comparisons stay in SQL).

Grammar (keywords and field names are case-insensitive)::

    selector := clause ("and" clause)*
    clause   := FIELD op value
    op       := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "like"
    value    := bare-word | 'single quoted' | "double quoted"

A quote inside a quoted value is doubled (``'O''Brien'``).  ``like`` uses
SQL wildcards (``%`` any run, ``_`` one character) and ignores ASCII case,
as SQLite does.  Other comparisons are exact and case-sensitive.  FwV, SwV,
HwV and DmV compare as versions (``1.10 > 1.9``, ``1.0 = 1``); every other
field compares as text.  A device whose field is unset matches no clause on
that field (SQL NULL semantics, ``!=`` included).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, NamedTuple
from dmwsi.errors import DmwsiError

__all__ = [
    "Clause",
    "SelectorError",
    "FIELDS",
    "VERSION_FIELDS",
    "OPERATORS",
    "parse_selector",
    "validate_clauses",
    "format_selector",
    "version_key",
    "compare_versions",
    "matches",
]


class SelectorError(DmwsiError, ValueError):
    """A selector is malformed or names an unknown field/operator."""


class Clause(NamedTuple):
    field: str  # canonical field name, e.g. "FwV"
    op: str  # one of OPERATORS
    value: str


#: Selector field name -> Device attribute / devices column.
FIELDS: dict[str, str] = {
    "DevId": "device_id",
    "Man": "man",
    "Mod": "mod",
    "FwV": "fwv",
    "SwV": "swv",
    "HwV": "hwv",
    "Lang": "lang",
    "DmV": "dmv",
    "DevTyp": "devtyp",
    "OEM": "oem",
    "MSISDN": "msisdn",
    "IMEI": "imei",
    "IMSI": "imsi",
    "SubscriberId": "subscriber_id",
}
VERSION_FIELDS = frozenset({"FwV", "SwV", "HwV", "DmV"})
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "like")

_CANONICAL = {name.lower(): name for name in FIELDS}
_OP_ALIASES = {"<>": "!="}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<word>[^\s<>=!'"]+)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_BARE_VALUE = re.compile(r"[^\s<>=!'\"]+")


def _known_fields() -> str:
    return ", ".join(FIELDS)


def _canonical_field(name: str, where: str = "") -> str:
    try:
        return _CANONICAL[name.lower()]
    except (KeyError, AttributeError):
        raise SelectorError(
            f"unknown selector field {name!r}{where}; known fields: {_known_fields()}"
        ) from None


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """Split into (kind, text, position); kinds: op, quoted, word."""
    out = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        kind = m.lastgroup
        tok = m.group(kind)
        start = m.start(kind)
        if kind == "bad":
            if tok in "'\"":
                raise SelectorError(f"unterminated quoted value at position {start}")
            raise SelectorError(f"unexpected character {tok!r} at position {start}")
        out.append((kind, tok, start))
        pos = m.end()
    return out


def _unquote(tok: str) -> str:
    q = tok[0]
    return tok[1:-1].replace(q + q, q)


def parse_selector(text: str) -> list[Clause]:
    """Parse selector text into validated clauses; raise SelectorError."""
    if not isinstance(text, str) or not text.strip():
        raise SelectorError("empty selector")
    toks = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def describe(j: int) -> str:
        return f"at position {toks[j][2]}" if j < len(toks) else "at end of selector"

    while True:
        # field
        if i >= len(toks) or toks[i][0] != "word":
            raise SelectorError(f"expected a field name {describe(i)}")
        field = _canonical_field(toks[i][1], f" at position {toks[i][2]}")
        i += 1
        # operator
        if i < len(toks) and toks[i][0] == "op":
            op = _OP_ALIASES.get(toks[i][1], toks[i][1])
        elif i < len(toks) and toks[i][0] == "word" and toks[i][1].lower() == "like":
            op = "like"
        else:
            raise SelectorError(
                f"expected an operator ({', '.join(OPERATORS)}) after {field} {describe(i)}"
            )
        i += 1
        # value
        if i >= len(toks) or toks[i][0] == "op":
            raise SelectorError(f"expected a value after {field} {op} {describe(i)}")
        kind, tok, _ = toks[i]
        value = _unquote(tok) if kind == "quoted" else tok
        i += 1
        clauses.append(Clause(field, op, value))
        if i == len(toks):
            return clauses
        if toks[i][0] == "word" and toks[i][1].lower() == "and":
            i += 1
            continue
        raise SelectorError(f"expected 'and' between clauses {describe(i)}")


def validate_clauses(clauses: Iterable[Any]) -> list[Clause]:
    """Check structured clauses (e.g. from a SOAP request or JSON) and
    return them with canonical field names; raise SelectorError."""
    out: list[Clause] = []
    for n, c in enumerate(clauses, 1):
        try:
            field, op, value = c
        except (TypeError, ValueError):
            raise SelectorError(f"clause {n} is not a (field, op, value) triple") from None
        if not isinstance(field, str):
            raise SelectorError(f"clause {n}: field name must be text")
        field = _canonical_field(field, f" in clause {n}")
        op = _OP_ALIASES.get(op, op.lower() if isinstance(op, str) else op)
        if op not in OPERATORS:
            raise SelectorError(
                f"clause {n}: unknown operator {op!r}; expected one of {', '.join(OPERATORS)}"
            )
        if not isinstance(value, str):
            raise SelectorError(f"clause {n}: value for {field} must be text")
        out.append(Clause(field, op, value))
    if not out:
        # An empty selector would mean "every device": too dangerous to
        # allow by accident for bulk operations.
        raise SelectorError("empty selector")
    return out


def format_selector(clauses: Iterable[Clause]) -> str:
    """Inverse of parse_selector (parse_selector(format_selector(c)) == c)."""
    parts = []
    for field, op, value in clauses:
        if _BARE_VALUE.fullmatch(value) and value.lower() not in ("and", "like"):
            v = value
        else:
            v = "'" + value.replace("'", "''") + "'"
        parts.append(f"{field} like {v}" if op == "like" else f"{field}{op}{v}")
    return " and ".join(parts)


# --- versions ----------------------------------------------------------------

_VERSION_SEGMENT = re.compile(r"[0-9]+|[^\W0-9_]+")


def version_key(version: str | None) -> str | None:
    """A text key whose plain string order is version order.

    Digit runs compare numerically, letter runs as lower-case text, other
    characters only separate segments; trailing zero segments are ignored
    (``1.0 == 1``); on a common prefix the longer version is greater;
    letters sort before numbers in the same position.  Returning text (not a
    tuple) lets SQLite compare keys with ordinary ``<``/``=``.
    """
    if version is None:
        return None
    segs = _VERSION_SEGMENT.findall(str(version))
    while segs and segs[-1].isdigit() and int(segs[-1]) == 0:
        segs.pop()
    enc = []
    for s in segs:
        if s.isdigit():
            digits = s.lstrip("0") or "0"
            # Length prefix makes longer numbers sort after shorter ones.
            enc.append(f"n{len(digits):03d}{digits}")
        else:
            enc.append("a" + s.lower())
    # "." sorts below every segment character, so a prefix sorts first.
    return ".".join(enc)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version a is lower than, equal to or higher than b."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


# --- evaluation in Python (same semantics as the SQL the store generates) ----


def _like_regex(pattern: str) -> re.Pattern:
    rx = "".join(
        ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern
    )
    return re.compile(rx, re.IGNORECASE | re.ASCII | re.DOTALL)


def matches(clauses: Iterable[Clause], device: Any) -> bool:
    """Whether a device (a Device or a mapping of column names) matches."""
    for field, op, value in validate_clauses(clauses):
        col = FIELDS[field]
        actual = device.get(col) if isinstance(device, Mapping) else getattr(device, col)
        if actual is None:
            return False
        if op == "like":
            if not _like_regex(value).fullmatch(str(actual)):
                return False
            continue
        if field in VERSION_FIELDS:
            actual, value = version_key(actual), version_key(value)
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "<": actual < value,
            "<=": actual <= value,
            ">": actual > value,
            ">=": actual >= value,
        }[op]
        if not ok:
            return False
    return True
