"""What a simulated device is (its profile) and how it behaves (``DeviceBehaviour``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dmwsi.sim.client.auth import CRED_TYPE_BY_SCHEME
from dmwsi.sim.objects import FumoScript, ScomoScript

ENCODINGS = ("xml", "wbxml")


@dataclass(frozen=True)
class DeviceBehaviour:
    """How one simulated device behaves; the fleet reads it per device class."""

    encoding: str = "xml"                  # "xml" | "wbxml"
    auth_scheme: str | None = None         # "basic" | "md5" | "hmac"; None = the profile's
    latency: float = 0.0                   # seconds before each request (used by the fleet)
    fail_rate: float = 0.0                 # chance a management command answers 500
    drop_rate: float = 0.0                 # chance, per server message, to go silent
    wrong_credentials: bool = False        # send a wrong client password
    require_server_auth: bool = False      # 407 when the server sends no credentials
    issue_server_nonces: bool = True       # Chal with a fresh nonce on 212 (§9.4)
    max_auth_retries: int = 2              # package 1 re-sends after 401/407
    max_server_auth_failures: int = 2      # server messages refused before giving up
    max_msg_size: int = 16384              # advertised MaxMsgSize
    max_obj_size: int | None = 4 * 1024 * 1024  # advertised MaxObjSize (None: not sent)
    ui_supported: bool = True              # UI alerts: 406 when False
    ui_confirm: bool = True                # answer to 1101: 200 (yes) or 304 (no)
    ui_text: str = ""                      # answer to 1102 when no DR option
    fumo_script: FumoScript = FumoScript()
    scomo_script: ScomoScript = ScomoScript()
    seed: int | None = None                # RNG seed for fail/drop decisions
    # Quirks of real clients (issue 11), off by default:
    session_id_one: bool = False           # every session SessionID 1 (MsgID 1), package 0 or not
    chunks_as_whole: bool = False          # each MoreData chunk taken as the whole value: 200, last kept
    atomic_refusal: int | None = None      # answer every Atomic with this code alone, no member statuses

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.auth_scheme is not None and self.auth_scheme not in CRED_TYPE_BY_SCHEME:
            raise ValueError(f"auth_scheme must be basic, md5 or hmac, got {self.auth_scheme!r}")


def default_profile(dev_id: str, **overrides: Any) -> dict[str, Any]:
    """A complete ``DeviceProfile`` dict for ``dev_id``; ``overrides`` win."""
    profile = {
        "dev_id": dev_id, "man": "ACME", "mod": "Sim-1", "fwv": "1.0.0", "swv": "1.0", "hwv": "A",
        "lang": "en-US", "dmv": "1.2", "server_id": "dmwsi", "server_password": f"srv-{dev_id}",
        "client_user": dev_id, "client_password": f"cli-{dev_id}", "auth_scheme": "md5",
        "server_address": "http://127.0.0.1:8080/dm",
    }
    profile.update(overrides)
    return profile
