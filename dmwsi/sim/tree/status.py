"""The error that carries the SyncML status a simulated tree command answers
(codes from ``dmwsi.dm.codes``, re-exported as ``Status``)."""
from __future__ import annotations

from dmwsi.dm.codes import StatusCode as Status   # the protocol's one table of status codes (reference §8)
from dmwsi.errors import DmwsiError

__all__ = ["Status", "TreeCommandError"]


class TreeCommandError(DmwsiError):
    """A command cannot be carried out; ``status`` is the DM status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
