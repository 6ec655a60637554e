"""SyncML DM status codes and alert codes (reference §7 and §8).

Codes travel on the wire as decimal text; ``IntEnum`` members compare equal to
plain ints, so parsed messages can keep ``int`` codes and still be checked
against these names.  Codes the reference only lists as "DS, unused in DM"
without a name (203-209, 419, 421-423) are left out on purpose.
"""

from enum import IntEnum


class StatusCode(IntEnum):
    IN_PROGRESS = 101
    OK = 200
    ITEM_ADDED = 201
    ACCEPTED_FOR_PROCESSING = 202
    DELETE_WITHOUT_ARCHIVE = 210
    ITEM_NOT_DELETED = 211
    AUTH_ACCEPTED = 212
    CHUNKED_ITEM_ACCEPTED = 213
    OPERATION_CANCELLED = 214
    NOT_EXECUTED = 215
    ATOMIC_ROLLBACK_OK = 216
    NOT_MODIFIED = 304
    BAD_REQUEST = 400
    INVALID_CREDENTIALS = 401
    PAYMENT_REQUIRED = 402
    FORBIDDEN = 403
    NOT_FOUND = 404
    COMMAND_NOT_ALLOWED = 405
    OPTIONAL_FEATURE_NOT_SUPPORTED = 406
    MISSING_CREDENTIALS = 407
    REQUEST_TIMEOUT = 408
    CONFLICT = 409
    GONE = 410
    SIZE_REQUIRED = 411
    INCOMPLETE_COMMAND = 412
    REQUEST_ENTITY_TOO_LARGE = 413
    URI_TOO_LONG = 414
    UNSUPPORTED_MEDIA_TYPE = 415
    REQUESTED_SIZE_TOO_BIG = 416
    RETRY_LATER = 417
    ALREADY_EXISTS = 418
    DEVICE_FULL = 420
    SIZE_MISMATCH = 424
    PERMISSION_DENIED = 425
    COMMAND_FAILED = 500
    COMMAND_NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504
    DTD_VERSION_NOT_SUPPORTED = 505
    PROCESSING_ERROR = 506
    ATOMIC_FAILED = 507
    REFRESH_REQUIRED = 508
    DATA_STORE_FAILURE = 510
    SERVER_FAILURE = 511
    SYNC_FAILED = 512
    PROTOCOL_VERSION_NOT_SUPPORTED = 513
    OPERATION_CANCELLED_FAILURE = 514
    ATOMIC_ROLLBACK_FAILED = 516
    ATOMIC_RESPONSE_TOO_LARGE = 517

    @property
    def reason(self) -> str:
        return _STATUS_REASONS[self]


_STATUS_REASONS = {
    StatusCode.IN_PROGRESS: "In progress",
    StatusCode.OK: "OK",
    StatusCode.ITEM_ADDED: "Item added",
    StatusCode.ACCEPTED_FOR_PROCESSING: "Accepted for processing",
    StatusCode.DELETE_WITHOUT_ARCHIVE: "Delete without archive",
    StatusCode.ITEM_NOT_DELETED: "Item not deleted",
    StatusCode.AUTH_ACCEPTED: "Authentication accepted",
    StatusCode.CHUNKED_ITEM_ACCEPTED: "Chunked item accepted and buffered",
    StatusCode.OPERATION_CANCELLED: "Operation cancelled",
    StatusCode.NOT_EXECUTED: "Not executed",
    StatusCode.ATOMIC_ROLLBACK_OK: "Atomic roll back OK",
    StatusCode.NOT_MODIFIED: "Not modified",
    StatusCode.BAD_REQUEST: "Bad request",
    StatusCode.INVALID_CREDENTIALS: "Invalid credentials",
    StatusCode.PAYMENT_REQUIRED: "Payment required",
    StatusCode.FORBIDDEN: "Forbidden",
    StatusCode.NOT_FOUND: "Not found",
    StatusCode.COMMAND_NOT_ALLOWED: "Command not allowed",
    StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED: "Optional feature not supported",
    StatusCode.MISSING_CREDENTIALS: "Missing credentials",
    StatusCode.REQUEST_TIMEOUT: "Request timeout",
    StatusCode.CONFLICT: "Conflict",
    StatusCode.GONE: "Gone",
    StatusCode.SIZE_REQUIRED: "Size required",
    StatusCode.INCOMPLETE_COMMAND: "Incomplete command",
    StatusCode.REQUEST_ENTITY_TOO_LARGE: "Request entity too large",
    StatusCode.URI_TOO_LONG: "URI too long",
    StatusCode.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type or format",
    StatusCode.REQUESTED_SIZE_TOO_BIG: "Requested size too big",
    StatusCode.RETRY_LATER: "Retry later",
    StatusCode.ALREADY_EXISTS: "Already exists",
    StatusCode.DEVICE_FULL: "Device full",
    StatusCode.SIZE_MISMATCH: "Size mismatch",
    StatusCode.PERMISSION_DENIED: "Permission denied",
    StatusCode.COMMAND_FAILED: "Command failed",
    StatusCode.COMMAND_NOT_IMPLEMENTED: "Command not implemented",
    StatusCode.BAD_GATEWAY: "Bad gateway",
    StatusCode.SERVICE_UNAVAILABLE: "Service unavailable",
    StatusCode.GATEWAY_TIMEOUT: "Gateway timeout",
    StatusCode.DTD_VERSION_NOT_SUPPORTED: "DTD version not supported",
    StatusCode.PROCESSING_ERROR: "Processing error",
    StatusCode.ATOMIC_FAILED: "Atomic failed",
    StatusCode.REFRESH_REQUIRED: "Refresh required",
    StatusCode.DATA_STORE_FAILURE: "Data store failure",
    StatusCode.SERVER_FAILURE: "Server failure",
    StatusCode.SYNC_FAILED: "Synchronization failed",
    StatusCode.PROTOCOL_VERSION_NOT_SUPPORTED: "Protocol version not supported",
    StatusCode.OPERATION_CANCELLED_FAILURE: "Operation cancelled",
    StatusCode.ATOMIC_ROLLBACK_FAILED: "Atomic roll back failed",
    StatusCode.ATOMIC_RESPONSE_TOO_LARGE: "Atomic response too large to fit",
}


class AlertCode(IntEnum):
    # UI alerts, server -> device only.
    DISPLAY = 1100
    CONFIRM_OR_REJECT = 1101
    TEXT_INPUT = 1102
    SINGLE_CHOICE = 1103
    MULTIPLE_CHOICE = 1104
    # Session control.
    SERVER_INITIATED_MGMT = 1200
    CLIENT_INITIATED_MGMT = 1201
    NEXT_MESSAGE = 1222
    SESSION_ABORT = 1223
    CLIENT_EVENT = 1224
    NO_END_OF_DATA = 1225
    GENERIC_ALERT = 1226

    @property
    def reason(self) -> str:
        return _ALERT_REASONS[self]


_ALERT_REASONS = {
    AlertCode.DISPLAY: "Display",
    AlertCode.CONFIRM_OR_REJECT: "Confirm or reject",
    AlertCode.TEXT_INPUT: "Text input",
    AlertCode.SINGLE_CHOICE: "Single choice",
    AlertCode.MULTIPLE_CHOICE: "Multiple choice",
    AlertCode.SERVER_INITIATED_MGMT: "Server-initiated management",
    AlertCode.CLIENT_INITIATED_MGMT: "Client-initiated management",
    AlertCode.NEXT_MESSAGE: "Next message",
    AlertCode.SESSION_ABORT: "Session abort",
    AlertCode.CLIENT_EVENT: "Client event",
    AlertCode.NO_END_OF_DATA: "No end of data for chunked object",
    AlertCode.GENERIC_ALERT: "Generic alert",
}

UI_ALERTS = frozenset(
    {
        AlertCode.DISPLAY,
        AlertCode.CONFIRM_OR_REJECT,
        AlertCode.TEXT_INPUT,
        AlertCode.SINGLE_CHOICE,
        AlertCode.MULTIPLE_CHOICE,
    }
)


def is_success(code: int) -> bool:
    """2xx means success, including codes no table defines (e.g. 222/223, §8)."""
    return 200 <= code <= 299


def status_reason(code: int) -> str:
    """Reason text for any status code; unknown codes are described by class."""
    try:
        return StatusCode(code).reason
    except ValueError:
        pass
    family = {1: "informational", 2: "success", 3: "redirection", 4: "originator error", 5: "recipient error"}
    return f"Unknown {family.get(code // 100, 'invalid')} code {code}"


def alert_reason(code: int) -> str:
    try:
        return AlertCode(code).reason
    except ValueError:
        return f"Unknown alert {code}"
