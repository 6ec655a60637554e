"""Status and alert code tables (reference §7, §8)."""
from dmwsi.dm.codes import AlertCode, StatusCode, UI_ALERTS, alert_reason, is_success, status_reason


def test_status_values():
    expected = {
        "IN_PROGRESS": 101, "OK": 200, "ACCEPTED_FOR_PROCESSING": 202, "AUTH_ACCEPTED": 212,
        "CHUNKED_ITEM_ACCEPTED": 213, "OPERATION_CANCELLED": 214, "NOT_EXECUTED": 215, "ATOMIC_ROLLBACK_OK": 216,
        "NOT_MODIFIED": 304, "BAD_REQUEST": 400, "INVALID_CREDENTIALS": 401, "NOT_FOUND": 404,
        "COMMAND_NOT_ALLOWED": 405, "OPTIONAL_FEATURE_NOT_SUPPORTED": 406, "MISSING_CREDENTIALS": 407,
        "INCOMPLETE_COMMAND": 412, "URI_TOO_LONG": 414, "UNSUPPORTED_MEDIA_TYPE": 415, "ALREADY_EXISTS": 418,
        "DEVICE_FULL": 420, "SIZE_MISMATCH": 424, "PERMISSION_DENIED": 425, "COMMAND_FAILED": 500,
        "PROCESSING_ERROR": 506, "ATOMIC_FAILED": 507, "ATOMIC_ROLLBACK_FAILED": 516,
        "ATOMIC_RESPONSE_TOO_LARGE": 517,
    }
    assert {name: StatusCode[name] for name in expected} == expected


def test_alert_values():
    assert [int(a) for a in AlertCode] == [1100, 1101, 1102, 1103, 1104, 1200, 1201, 1222, 1223, 1224, 1225, 1226]
    assert AlertCode.GENERIC_ALERT == 1226 and AlertCode(1222) is AlertCode.NEXT_MESSAGE
    assert UI_ALERTS == {1100, 1101, 1102, 1103, 1104}


def test_every_code_has_a_reason():
    assert all(c.reason for c in StatusCode) and all(a.reason for a in AlertCode)
    assert status_reason(213) == "Chunked item accepted and buffered"
    assert alert_reason(1223) == "Session abort"


def test_undefined_codes():
    # 222/223 are defined nowhere (§8): unknown 2xx success
    assert is_success(222) and status_reason(222) == "Unknown success code 222"
    assert not is_success(0) and status_reason(0) == "Unknown invalid code 0"
    assert not is_success(StatusCode.NOT_MODIFIED)
    assert alert_reason(9999) == "Unknown alert 9999"
