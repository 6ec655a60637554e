"""What the simulated tree's server-side commands take and give back.

A Get answers ``dmwsi.records.ResultItem`` records (URI, value, Format, Type);
an Exec is handed to a registered handler as an ``ExecRequest``; an Atomic
takes ``TreeCommand`` members and answers an ``AtomicResult``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dmwsi.records import ResultItem


@dataclass(frozen=True)
class GetResult:
    items: tuple[ResultItem, ...]


@dataclass(frozen=True)
class ExecRequest:
    uri: str  # normalized URI of the executed node
    data: str | None
    correlator: str | None
    server_id: str


ExecHandler = Callable[[ExecRequest], int]
AddHook = Callable[[str], None]


@dataclass(frozen=True)
class TreeCommand:
    """A command inside an Atomic: verb is Add, Replace, Delete, Copy, Exec or Get."""

    verb: str
    target: str
    value: str | bytes | None = None
    format: str | None = None
    type: str | None = None
    source: str | None = None  # Copy only
    correlator: str | None = None  # Exec only


@dataclass(frozen=True)
class AtomicResult:
    status: int  # 200 or 507
    member_statuses: tuple[int, ...]
