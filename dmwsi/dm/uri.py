"""OMA DM node URIs: the one canonical form every check compares.

A caller's URI is accepted only if it is already canonical (DM TND, 6.2 of
the reference): ``./A/B`` or relative ``A/B``, segments separated by single
``/``, no ``.``/``..`` segment after the leading ``./``, no empty segment,
no trailing slash, no percent-encoding of ``.`` or ``/`` (at any depth of
encoding: ``%2e``, ``%252e``...), and as query only ``?list=<x>`` or
``?prop=<x>``. Refusing instead of rewriting means the node that was
authorized is the node the device receives.
"""
from urllib.parse import unquote

from dmwsi.errors import DmwsiError

QUERIES = ("list", "prop")


class BadUri(DmwsiError, ValueError):
    """The URI is not a canonical OMA DM node URI; the message says why."""


def split(uri):
    """``uri`` as (path, name, value) of its ``?name=value`` query, judging
    neither: (path, None, None) without ``?``; name None for a query without
    ``=``. Shared by the server's strict check below and the simulated
    device's lenient reading (dmwsi.sim.tree.uri)."""
    path, sep, query = uri.partition("?")
    if not sep:
        return path, None, None
    name, eq, value = query.partition("=")
    return (path, name, value) if eq else (path, None, query)


def segments(path):
    """The segment texts of a path below the root, as written (empty ones
    kept for the caller to judge): ``.`` -> [], ``./A/B`` and ``A/B`` -> [A, B]."""
    if path in ("", "."):
        return []
    parts = path.split("/")
    return parts[1:] if parts[0] == "." else parts


def canonical(uri):
    """``uri`` as (path, query): the path in ``./A/B`` form (or ``.``), the
    query "" or e.g. ``list=StructData``; raises BadUri for anything else."""
    if not isinstance(uri, str) or not uri:
        raise BadUri("empty node URI")
    if "\\" in uri or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise BadUri("control character or backslash in node URI")
    if _hides_separator(uri):
        raise BadUri("percent-encoded '.' or '/' in node URI")
    path, name, value = split(uri)
    query = "" if value is None else f"{name}={value}"
    if value is not None and (name not in QUERIES or not value or "?" in value):
        raise BadUri("the only queries are ?list=<x> and ?prop=<x>")
    if path == ".":
        return ".", query
    if path.startswith("/"):
        raise BadUri("node URI starts with '/'")
    names = segments(path) or [""]          # "" and "./" hold one empty segment
    for segment in names:
        if segment == "":
            raise BadUri("empty segment or trailing slash in node URI")
        if segment in (".", ".."):
            raise BadUri(f"{segment!r} segment in node URI")
    return "./" + "/".join(names), query


def path_of(uri):
    """The canonical path of ``uri`` (its query dropped); raises BadUri."""
    return canonical(uri)[0]


def _hides_separator(uri):
    """Does decoding (repeatedly, as layers below might) reveal a '.' or
    '/' that the raw text does not show?"""
    previous, dots, slashes = uri, uri.count("."), uri.count("/")
    while True:
        decoded = unquote(previous)
        if decoded == previous:
            return False
        if decoded.count(".") > dots or decoded.count("/") > slashes:
            return True
        previous = decoded
