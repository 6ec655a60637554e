"""How a simulated device's sessions end, and what it counts across them."""
from __future__ import annotations

from dmwsi.sim.counters import counters

# Session outcomes (``SimulatedDevice.last_outcome``).
OUTCOME_OK = "ok"
OUTCOME_FAILED = "failed"
OUTCOME_DROPPED = "dropped"
OUTCOME_ABORTED = "aborted"

DeviceStats = counters(
    "DeviceStats", "What one simulated device counted across its sessions.",
    "sessions_started sessions_ok sessions_failed sessions_dropped sessions_aborted messages_sent "
    "commands_executed commands_failed alerts_sent alerts_acknowledged alerts_rejected "
    "notifications_accepted notifications_rejected nonce_resyncs auth_retries")
