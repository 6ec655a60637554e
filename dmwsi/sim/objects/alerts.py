"""Generic Alerts (1226, §15) the management objects owe the server, and their result codes.

An alert is a plain dict the device client turns into an Alert command::

    {"type": ..., "source": uri, "target": uri | None, "format": ...,
     "mark": ..., "data": str, "correlator": str | None}
"""
from __future__ import annotations

from dataclasses import dataclass


def generic_alert(
    alert_type: str,
    source: str,
    data: str,
    *,
    format: str,
    mark: str,
    correlator: str | None,
    target: str | None = None,
) -> dict[str, str | None]:
    """Description of one Generic Alert (1226) Item for the session layer (§15)."""
    return {"type": alert_type, "source": source, "target": target, "format": format,
            "mark": mark, "data": data, "correlator": correlator}


@dataclass(frozen=True)
class AlertMarks:
    """Mark values [?] (§15); the simulator convention is informational/critical."""

    success: str = "informational"
    failure: str = "critical"


def succeeded(result_code: int, success_code: int) -> bool:
    """Whether an operation's result code reports success: the codes in the
    hundred of the MO's success code (FUMO 200: 200-299, SCOMO 1200: 1200-1299)."""
    return success_code <= result_code < success_code + 100
