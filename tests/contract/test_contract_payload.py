"""Payloads against the callback contract; backoff; the [push] settings."""
import random
from datetime import datetime, timedelta, timezone

import pytest

from dmwsi.config import ConfigError, load_config
from dmwsi.contract.payload import PayloadError, decode, encode, operations
from dmwsi.push.sender import SETTINGS, backoff_delay, check_settings

T = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def device_result(**extra):
    return {"jobId": "J1", "deliveryId": "D1", "sequence": 1,
            "result": {"jobId": "J1", "deviceId": "d1", "state": "succeeded", "completedAt": T,
                       "items": [{"uri": "./DevInfo/Man", "value": "Acme"}, {"uri": "./DevInfo/Mod"}], **extra}}


def test_operations_are_those_of_the_callback_contract():
    assert set(operations()) == {"DeviceResult", "ResultsAvailable", "EventOccurred", "DiagnosticsReport",
                                 "JobCompleted"}


def test_encode_is_json_and_decode_restores_times():
    import json
    stored = encode("DeviceResult", device_result(message=None))   # None: absent
    assert json.loads(json.dumps(stored)) == stored
    assert stored["result"]["completedAt"] == "2024-05-01T12:00:00.123456+00:00"
    assert "message" not in stored["result"]
    assert decode("DeviceResult", stored) == {**device_result(), "result": {**device_result()["result"]}}
    # Other zones are stored as UTC; ISO text input is accepted too.
    cet = T.astimezone(timezone(timedelta(hours=2)))
    assert encode("DeviceResult", device_result(completedAt=cet)) == stored
    assert encode("DeviceResult", device_result(completedAt=T.isoformat())) == stored


@pytest.mark.parametrize("change, message", [
    ({"sequence": None}, "DeviceResult.sequence: required"),
    ({"sequence": "1"}, "DeviceResult.sequence: expected an integer"),
    ({"sequence": True}, "DeviceResult.sequence: expected an integer"),
    ({"extra": 1}, "DeviceResult has no field(s) extra"),
    ({"result": {"jobId": "J1", "state": "done"}}, "DeviceResult.result.state: 'done' is not a TargetState"),
    ({"result": {"jobId": "J1", "state": "failed", "statusCode": 2**31}}, "out of the xs:int range"),
    ({"result": {"jobId": "J1", "state": "failed", "items": {"uri": "x"}}}, "items: expected a list"),
    ({"result": {"jobId": "J1", "state": "failed", "items": [{"value": "x"}]}}, "items[0].uri: required"),
    ({"result": {"jobId": "J1", "state": "failed", "completedAt": datetime(2024, 1, 1)}}, "naive datetime"),
    ({"result": {"jobId": "J1", "state": "failed", "completedAt": "yesterday"}}, "not an ISO-8601"),
    ({"result": {"jobId": "J1", "state": "failed", "items": [{"uri": "x", "value": b"\x01"}]}},
     "items[0].value: expected a string"),
])
def test_encode_refuses_what_the_contract_does_not_allow(change, message):
    with pytest.raises(PayloadError) as e:
        encode("DeviceResult", {**device_result(), **change})
    assert message in str(e.value)


def test_unknown_operation_is_refused():
    with pytest.raises(PayloadError, match="not a callback operation"):
        encode("GetJobStatus", {})
    with pytest.raises(PayloadError, match="not a callback operation"):
        decode("Nope", {})


def test_backoff_doubles_up_to_the_cap_with_jitter_below_it():
    assert [backoff_delay(n, 1.0, 10.0, 0.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff_delay(10_000, 1.0, 10.0, 0.0) == 10   # no overflow for huge counts
    rng = random.Random(7)
    delays = [backoff_delay(3, 1.0, 10.0, 0.5, rng.random) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100      # spread, not one value


def test_default_push_settings_are_valid_and_documented():
    from dmwsi.config import DEFAULT_CONFIG
    settings = check_settings(load_config(environ={})["push"])
    assert set(settings) == set(SETTINGS)
    text = DEFAULT_CONFIG.read_text()
    section = text[text.index("[push]"):]
    for key in SETTINGS:
        # Each key is preceded by a comment line in its block.
        block = section[:section.index(f"\n{key} =")].rsplit("\n\n", 1)[-1]
        assert "#" in block, f"push.{key} is not documented"
    env = load_config(environ={"DMWSI_PUSH_MAX_ATTEMPTS": "3", "DMWSI_PUSH_POLL_INTERVAL": "0.5"})["push"]
    assert (env["max_attempts"], env["poll_interval"]) == (3, 0.5)


@pytest.mark.parametrize("change", [
    {"poll_interval": 0}, {"max_in_flight": 0}, {"max_in_flight": 1.5}, {"timeout": -1},
    {"initial_backoff": 0}, {"max_backoff": 1.0, "initial_backoff": 2.0}, {"max_attempts": 0},
    {"jitter": 1.0}, {"jitter": -0.1}, {"max_attempts": True}, {"timeout": "30"},
])
def test_bad_push_settings_are_refused(change):
    settings = {**load_config(environ={})["push"], **change}
    with pytest.raises(ConfigError):
        check_settings(settings)


def test_missing_push_setting_is_refused():
    settings = dict(load_config(environ={})["push"])
    del settings["timeout"]
    with pytest.raises(ConfigError, match="push.timeout: missing"):
        check_settings(settings)
