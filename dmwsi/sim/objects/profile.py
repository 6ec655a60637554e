"""The device profile the simulated tree is built from, and what every builder derives from it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

AUTH_SCHEME_TO_AAUTH_TYPE = {"md5": "DIGEST", "digest": "DIGEST", "basic": "BASIC", "hmac": "HMAC"}


@dataclass(frozen=True)
class InstalledComponent:
    id: str
    name: str
    version: str
    description: str = ""
    active: bool = True


@dataclass(frozen=True)
class DeviceProfile:
    dev_id: str
    man: str
    mod: str
    fwv: str
    swv: str
    hwv: str
    lang: str
    dmv: str
    server_id: str
    server_password: str
    client_user: str
    client_password: str
    auth_scheme: str
    server_address: str = "http://localhost:8080/dm"
    server_name: str = ""
    dev_type: str = "phone"
    oem: str = ""
    large_objects: bool = True
    fumo_package: str = "pkg1"
    battery_level: int = 100
    free_memory: int = 512 * 1024 * 1024
    signal_dbm: int = -70
    components: tuple[InstalledComponent, ...] = ()

    @classmethod
    def from_dict(cls, profile: Mapping[str, Any]) -> DeviceProfile:
        values = dict(profile)
        values["components"] = tuple(InstalledComponent(**item) for item in values.get("components", ()))
        if values["auth_scheme"].lower() not in AUTH_SCHEME_TO_AAUTH_TYPE:
            raise ValueError(f"unknown auth_scheme {values['auth_scheme']!r}")
        return cls(**values)

    @property
    def aauth_type(self) -> str:
        return AUTH_SCHEME_TO_AAUTH_TYPE[self.auth_scheme.lower()]


def full_rights_acl(server_id: str) -> str:
    return f"Add={server_id}&Delete={server_id}&Exec={server_id}&Get={server_id}&Replace={server_id}"
