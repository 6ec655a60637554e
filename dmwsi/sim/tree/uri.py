"""Node URIs of the simulated tree: parsing, escaping, joining, ``*`` patterns.

``./A/B`` or ``A/B``; segments are percent-escaped on the wire and raw in the
tree; a trailing ``/`` is tolerated; ``.`` alone is the root; an optional
``?prop=...`` or ``?list=...`` query is kept apart from the path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote, unquote

from dmwsi.dm.uri import segments, split
from dmwsi.sim.tree.status import Status, TreeCommandError

_URI_SAFE_CHARS = "!$&'()*+,;=:@"


@dataclass(frozen=True)
class ParsedUri:
    segments: tuple[str, ...]  # unescaped node names below the root
    query_key: str | None = None  # "prop" or "list"
    query_value: str | None = None

    @property
    def path(self) -> str:
        return join_uri(self.segments)

    @property
    def query(self) -> str:
        return f"?{self.query_key}={self.query_value}" if self.query_key else ""


def escape_name(name: str) -> str:
    """One raw node name as a URI segment."""
    return quote(name, safe=_URI_SAFE_CHARS)


def join_uri(segments: Sequence[str]) -> str:
    """Absolute escaped URI of the node with these (raw) names."""
    return "/".join(["."] + [escape_name(name) for name in segments])


def parse_uri(uri: str) -> ParsedUri:
    """Split a DM URI into raw segment names and an optional ``?key=value`` query."""
    path, query_key, query_value = split(uri)
    if query_value is not None and not query_key:
        raise TreeCommandError(Status.BAD_REQUEST, f"malformed query in {uri!r}")
    if path.startswith("/"):
        raise TreeCommandError(Status.BAD_REQUEST, f"URI must not start with '/': {uri!r}")
    escaped = segments(path[:-1] if path.endswith("/") else path)   # a device tolerates a trailing "/"
    if any(segment == "" for segment in escaped):
        raise TreeCommandError(Status.BAD_REQUEST, f"empty segment in {uri!r}")
    return ParsedUri(tuple(unquote(segment) for segment in escaped), query_key, query_value)


def normalize_uri(uri: str) -> str:
    """Canonical absolute form ``./A/B`` (query kept), e.g. ``A/B/`` → ``./A/B``."""
    parsed = parse_uri(uri)
    return parsed.path + parsed.query


def matches_pattern(pattern: str, uri: str) -> bool:
    """True if ``uri`` matches ``pattern`` where a ``*`` segment matches any one name."""
    pattern_segments = parse_uri(pattern).segments
    segments = parse_uri(uri).segments
    return len(pattern_segments) == len(segments) and all(
        wanted in ("*", actual) for wanted, actual in zip(pattern_segments, segments)
    )
