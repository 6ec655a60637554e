"""Records of event counters, for a simulated device and for the fleet.

``counters`` makes a dataclass whose fields are ``int`` counts starting at 0,
so each record is declared once by its names, and ``total`` sums records of
one kind (the fleet's totals of its devices).
"""
from __future__ import annotations

from dataclasses import fields, make_dataclass
from typing import Iterable


def counters(name: str, doc: str, names: str) -> type:
    """A dataclass ``name`` with one ``int`` field (default 0) per word of ``names``."""
    record = make_dataclass(name, [(count, int, 0) for count in names.split()])
    record.__doc__ = doc
    return record


def total(record_type: type, records: Iterable) -> object:
    """One ``record_type`` holding the sum of every count of ``records``."""
    summed = record_type()
    names = [f.name for f in fields(record_type)]
    for record in records:
        for name in names:
            setattr(summed, name, getattr(summed, name) + getattr(record, name))
    return summed
