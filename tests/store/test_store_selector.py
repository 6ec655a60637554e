import random

import pytest

from dmwsi.selector import (
    FIELDS,
    Clause,
    SelectorError,
    compare_versions,
    format_selector,
    matches,
    parse_selector,
    validate_clauses,
    version_key,
)
from dmwsi.records import Device


def test_parse_simple_conjunction():
    assert parse_selector("Man=Acme and Mod=Phone1 and FwV<2.0") == [
        Clause("Man", "=", "Acme"),
        Clause("Mod", "=", "Phone1"),
        Clause("FwV", "<", "2.0"),
    ]


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_parse_every_symbolic_operator(op):
    assert parse_selector(f"FwV {op} 1.2") == [Clause("FwV", op, "1.2")]


def test_parse_like_quotes_case_and_aliases():
    assert parse_selector("man LIKE 'Ac%' AND mod <> \"Phone 1\" and DevTyp='O''Brien'") == [
        Clause("Man", "like", "Ac%"),
        Clause("Mod", "!=", "Phone 1"),
        Clause("DevTyp", "=", "O'Brien"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty selector"),
        ("   ", "empty selector"),
        ("Colour=red", "unknown selector field 'Colour'"),
        ("Man Acme", "expected an operator"),
        ("Man=", "expected a value"),
        ("Man==Acme", "expected a value"),
        ("Man=Acme Mod=X", "expected 'and'"),
        ("Man=Acme and", "expected a field name"),
        ("Man='Acme", "unterminated quoted value"),
        ("Man=Acme or Mod=X", "expected 'and'"),
    ],
)
def test_parse_errors_are_clear(text, message):
    with pytest.raises(SelectorError, match=message):
        parse_selector(text)


def test_unknown_field_message_lists_known_fields():
    with pytest.raises(SelectorError) as e:
        parse_selector("Colour=red")
    assert "FwV" in str(e.value) and "MSISDN" in str(e.value)


def test_validate_structured_clauses():
    assert validate_clauses([("fwv", "LIKE", "1.%"), ("man", "<>", "X")]) == [
        Clause("FwV", "like", "1.%"),
        Clause("Man", "!=", "X"),
    ]
    with pytest.raises(SelectorError, match="unknown operator"):
        validate_clauses([("Man", "~", "x")])
    with pytest.raises(SelectorError, match="must be text"):
        validate_clauses([("Man", "=", 3)])
    with pytest.raises(SelectorError, match="not a .field, op, value. triple"):
        validate_clauses([("Man", "=")])
    with pytest.raises(SelectorError, match="empty selector"):
        validate_clauses([])


@pytest.mark.parametrize(
    "clauses",
    [
        [Clause("Man", "=", "Acme")],
        [Clause("Mod", "=", "Phone 1"), Clause("FwV", ">=", "1.0")],
        [Clause("DevTyp", "like", "it's%"), Clause("Man", "=", "and")],
        [Clause("Lang", "!=", "")],
    ],
)
def test_format_round_trips(clauses):
    assert parse_selector(format_selector(clauses)) == clauses


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("1.9", "1.10"),
        ("1.2", "1.2.1"),
        ("2", "10"),
        ("1.0a", "1.0.1"),
        ("R1.9", "R1.10"),
        ("0.9.99", "1"),
        ("1.0b", "1.0c"),
        ("99999999999999999999", "100000000000000000000"),
    ],
)
def test_version_order(lower, higher):
    assert compare_versions(lower, higher) == -1
    assert compare_versions(higher, lower) == 1
    assert version_key(lower) < version_key(higher)


def test_version_equalities():
    assert compare_versions("1.0", "1") == 0
    assert compare_versions("1.0.0", "1") == 0
    assert compare_versions("01.002", "1.2") == 0
    assert compare_versions("1-2", "1.2") == 0
    assert version_key(None) is None


def test_python_matching_semantics():
    d = Device("x", man="Acme", fwv="1.10", lang=None)
    assert matches(parse_selector("FwV>1.9"), d)
    assert not matches(parse_selector("FwV<1.9"), d)
    assert matches(parse_selector("Man like 'ac%'"), d)  # ASCII case-insensitive, as SQLite
    assert not matches(parse_selector("Man=acme"), d)  # = is exact
    assert not matches(parse_selector("Lang!=en"), d)  # unset never matches (SQL NULL)
    assert matches(parse_selector("FwV=2.0"), {"man": "Acme", "fwv": "2"})  # mappings work too


def test_sql_and_python_agree_on_random_selectors(store):
    """The store compiles clauses to SQL; dmwsi.selector.matches evaluates
    them in Python (used for event subscriptions).  Both must agree."""
    rng = random.Random(7)
    mans = ["Acme", "acme", "Other", None]
    vers = ["1", "1.0", "1.9", "1.10", "2.0b", "2.0", "10", None]
    devices = []
    for i in range(300):
        d = Device(
            f"d{i:03d}",
            man=rng.choice(mans),
            mod=rng.choice(["Phone1", "Phone2", None]),
            fwv=rng.choice(vers),
            swv=rng.choice(vers),
            lang=rng.choice(["en", "de", None]),
        )
        store.upsert_device(d)
        devices.append(d)
    fields = ["Man", "Mod", "FwV", "SwV", "Lang", "DevId"]
    values = {
        "Man": ["Acme", "ACME", "A%", "%e", "Oth_r"],
        "Mod": ["Phone1", "Phone%", "P_one2"],
        "FwV": vers[:-1] + ["1.%"],
        "SwV": vers[:-1],
        "Lang": ["en", "de", "e%"],
        "DevId": ["d100", "d2%", "d050"],
    }
    for _ in range(200):
        clauses = []
        for _ in range(rng.randint(1, 3)):
            f = rng.choice(fields)
            clauses.append(Clause(f, rng.choice(["=", "!=", "<", "<=", ">", ">=", "like"]), rng.choice(values[f])))
        expected = sorted(d.device_id for d in devices if matches(clauses, d))
        assert store.select_devices(clauses) == expected, clauses


def test_fields_map_to_device_attributes():
    for column in FIELDS.values():
        assert hasattr(Device("x"), column)
