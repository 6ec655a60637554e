"""Fixtures for store tests: a real SQLite file per test."""

from datetime import datetime, timedelta, timezone

import pytest

from dmwsi.records import Device

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def devices(store):
    """Register a small, varied fleet; returns the ids."""
    fleet = [
        Device("dev-a", msisdn="+4470001", imei="350000000000001", man="Acme", mod="Phone1", fwv="1.9", swv="3.0", lang="en"),
        Device("dev-b", msisdn="+4470002", imei="350000000000002", man="Acme", mod="Phone1", fwv="1.10", swv="3.1", lang="de"),
        Device("dev-c", msisdn="+4470003", imei="350000000000003", man="Acme", mod="Phone2", fwv="2.0", lang="en"),
        Device("dev-d", msisdn="+4470004", imei="350000000000004", man="Other", mod="Tab", fwv="10.0", lang="fr"),
        Device("dev-e", imei="350000000000005", man="acme", mod="Phone1"),  # no firmware version
    ]
    for d in fleet:
        store.upsert_device(d, now=T0)
    return [d.device_id for d in fleet]
