"""Push payloads: a callback operation's request fields as a JSON-able dict.

The outbox stores payloads as JSON, so values the callback contract types as
``xs:dateTime`` are kept as ISO-8601 text and ``xs:base64Binary`` as base64
text. :func:`encode` checks a payload against the callback contract (field
names, required fields, repetition, enumerations, built-in types) and
converts it for storage, so a malformed push fails inside the transaction that
enqueues it instead of failing on every delivery attempt. :func:`decode` turns
the stored form back into the values zeep serializes (``datetime``, ``bytes``).

Both walk the contract read by :func:`dmwsi.contract.load_contract`:
nothing here repeats a field of the XSD.
"""
import base64
import binascii
import functools
from datetime import datetime, timezone

from dmwsi.contract import CALLBACK_WSDL, XS, load_contract
from dmwsi.errors import DmwsiError

INT_RANGE = (-2**31, 2**31 - 1)
LONG_RANGE = (-2**63, 2**63 - 1)


class PayloadError(DmwsiError, ValueError):
    """A payload does not match the callback contract."""


@functools.cache
def callback_contract():
    """The callback contract (wsdl/dmwsi-callback-1.0.wsdl), read once."""
    return load_contract(CALLBACK_WSDL)


def operations():
    return tuple(callback_contract().operations)


def encode(operation, values):
    """Request fields of callback ``operation`` -> the JSON-able payload.

    Fields whose value is None are left out (absent optional elements).
    Raises PayloadError naming the first offending field."""
    return _top(operation, values, _encode_builtin)


def decode(operation, payload):
    """A stored payload -> the request fields zeep sends (datetimes, bytes)."""
    return _top(operation, payload, _decode_builtin)


def _top(operation, values, builtin):
    contract = callback_contract()
    op = contract.operations.get(operation)
    if op is None:
        raise PayloadError(f"{operation!r} is not a callback operation (one of {', '.join(contract.operations)})")
    return _complex(contract, contract.elements[op.input], values, operation, builtin)


def _complex(contract, qname, value, path, builtin):
    if not isinstance(value, dict):
        raise PayloadError(f"{path}: expected a {qname[1]} (dict), got {type(value).__name__}")
    fields = {f.name: f for f in contract.complex_types[qname]}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise PayloadError(f"{path}: {qname[1]} has no field(s) {', '.join(unknown)}")
    out = {}
    for name, f in fields.items():
        v = value.get(name)
        where = f"{path}.{name}"
        if v is None or (f.repeated and v == []):
            if f.min_occurs > 0:
                raise PayloadError(f"{where}: required")
            continue
        if f.repeated:
            if not isinstance(v, (list, tuple)):
                raise PayloadError(f"{where}: expected a list")
            if f.max_occurs != "unbounded" and len(v) > f.max_occurs:
                raise PayloadError(f"{where}: at most {f.max_occurs} item(s)")
            if len(v) < f.min_occurs:
                raise PayloadError(f"{where}: at least {f.min_occurs} item(s)")
            out[name] = [_value(contract, f.type, item, f"{where}[{i}]", builtin) for i, item in enumerate(v)]
        else:
            out[name] = _value(contract, f.type, v, where, builtin)
    return out


def _value(contract, qname, value, path, builtin):
    if qname[0] == XS:
        return builtin(qname[1], value, path)
    if qname in contract.enums:
        value = str(value) if type(value).__name__ == "EnumValue" else value
        if value not in contract.enums[qname]:
            raise PayloadError(f"{path}: {value!r} is not a {qname[1]} ({', '.join(contract.enums[qname])})")
        return value
    if qname in contract.complex_types:
        return _complex(contract, qname, value, path, builtin)
    raise PayloadError(f"{path}: type {qname[1]} is not defined in the callback contract")


def _integer(kind, value, path):
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{path}: expected an integer, got {value!r}")
    low, high = INT_RANGE if kind == "int" else LONG_RANGE
    if not low <= value <= high:
        raise PayloadError(f"{path}: {value} is out of the xs:{kind} range")
    return value


def _parse_time(value, path):
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError(f"{path}: {value!r} is not an ISO-8601 date and time") from None
    else:
        raise PayloadError(f"{path}: expected a datetime, got {type(value).__name__}")
    if dt.tzinfo is None:
        # Guessing a zone would silently shift the time (the store refuses them too).
        raise PayloadError(f"{path}: naive datetime; give a timezone-aware (UTC) time")
    return dt.astimezone(timezone.utc)


def _encode_builtin(kind, value, path):
    if kind == "string":
        if not isinstance(value, str):
            raise PayloadError(f"{path}: expected a string, got {type(value).__name__}")
        return value
    if kind in ("int", "long"):
        return _integer(kind, value, path)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise PayloadError(f"{path}: expected a boolean, got {value!r}")
        return value
    if kind == "dateTime":
        return _parse_time(value, path).isoformat()
    if kind == "base64Binary":
        if not isinstance(value, (bytes, bytearray)):
            raise PayloadError(f"{path}: expected bytes, got {type(value).__name__}")
        return base64.b64encode(bytes(value)).decode("ascii")
    raise PayloadError(f"{path}: unsupported built-in type xs:{kind}")


def _decode_builtin(kind, value, path):
    if kind == "dateTime":
        return _parse_time(value, path)
    if kind == "base64Binary":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise PayloadError(f"{path}: not base64 text") from None
    return _encode_builtin(kind, value, path)   # the JSON form of the rest is the value itself
