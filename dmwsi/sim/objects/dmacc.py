"""DMAcc 1.2 (``./DMAcc/<server id>``): the DM server account, its address and credentials.

Besides building the account, this module reads what the client needs from
it: the account of a server id (located by Type, §11.3), the credentials of
one AppAuth level (CLCRED, SRVCRED) and the nonce kept in its AAuthData.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import GROWABLE, READ_REPLACE, REPLACE_ONLY, DMTree, join_uri, parse_uri

MO_DMACC = "urn:oma:mo:oma-dm-dmacc:1.0"
DMACC_URI = "./DMAcc"
CLIENT_CREDENTIALS = "CLCRED"
SERVER_CREDENTIALS = "SRVCRED"


def build_dmacc(tree: DMTree, profile: DeviceProfile) -> str:
    """DMAcc 1.2 account for the profile's server; returns the account URI."""
    if not tree.exists(DMACC_URI):
        tree.create_interior(DMACC_URI, access=GROWABLE, acl=full_rights_acl(profile.server_id))
    account = join_uri(parse_uri(DMACC_URI).segments + (profile.server_id,))
    tree.create_interior(account, type=MO_DMACC, access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppID", "w7")
    tree.create_leaf(f"{account}/ServerID", profile.server_id, access=READ_REPLACE)
    tree.create_leaf(f"{account}/Name", profile.server_name or profile.server_id, access=READ_REPLACE)
    tree.create_leaf(f"{account}/PrefConRef", "", access=READ_REPLACE)
    address = urlsplit(profile.server_address)
    default_port = 443 if address.scheme == "https" else 80
    tree.create_interior(f"{account}/AppAddr", access=GROWABLE)
    tree.create_interior(f"{account}/AppAddr/1", access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/Addr", profile.server_address, access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/AddrType", "URI", access=READ_REPLACE)
    tree.create_interior(f"{account}/AppAddr/1/Port", access=GROWABLE)
    tree.create_interior(f"{account}/AppAddr/1/Port/1", access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/Port/1/PortNbr", str(address.port or default_port),
                     access=READ_REPLACE)
    tree.create_leaf(f"{account}/AAuthPref", profile.aauth_type, access=READ_REPLACE)
    tree.create_interior(f"{account}/AppAuth", access=GROWABLE)
    for level, user, secret in ((CLIENT_CREDENTIALS, profile.client_user, profile.client_password),
                                (SERVER_CREDENTIALS, profile.server_id, profile.server_password)):
        auth = f"{account}/AppAuth/{level}"
        tree.create_interior(auth, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthLevel", level, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthType", profile.aauth_type, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthName", user, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthSecret", secret, access=REPLACE_ONLY)
        tree.create_leaf(f"{auth}/AAuthData", b"", format="bin", type="application/octet-stream",
                         access=REPLACE_ONLY)
    tree.create_interior(f"{account}/Ext")
    return account


@dataclass(frozen=True)
class AppAuthCredentials:
    level: str
    auth_type: str
    name: str
    secret: str
    nonce: bytes


def find_dm_account(tree: DMTree, server_id: str) -> str | None:
    """URI of the DMAcc account (located by Type, §11.3) whose ServerID is ``server_id``."""
    for uri, node in tree.walk():
        server_id_node = node.children.get("ServerID")
        if node.type == MO_DMACC and server_id_node is not None and server_id_node.value == server_id:
            return uri
    return None


def _app_auth_uri(tree: DMTree, account_uri: str, level: str) -> str:
    for name, entry in tree.node(f"{account_uri}/AppAuth").children.items():
        level_node = entry.children.get("AAuthLevel")
        if level_node is not None and level_node.value == level:
            return join_uri(parse_uri(account_uri).segments + ("AppAuth", name))
    raise KeyError(f"{account_uri} has no AppAuth entry for {level}")


def read_app_auth(tree: DMTree, account_uri: str, level: str) -> AppAuthCredentials:
    """Credentials and stored nonce of one AppAuth level (CLCRED or SRVCRED)."""
    auth = _app_auth_uri(tree, account_uri, level)
    nonce = tree.read_value(f"{auth}/AAuthData")
    return AppAuthCredentials(
        level=level,
        auth_type=str(tree.read_value(f"{auth}/AAuthType")),
        name=str(tree.read_value(f"{auth}/AAuthName")),
        secret=str(tree.read_value(f"{auth}/AAuthSecret")),
        nonce=nonce if isinstance(nonce, bytes) else b"",
    )


def store_nonce(tree: DMTree, account_uri: str, level: str, nonce: bytes) -> None:
    """Keep the raw nonce for ``level`` in its AAuthData (§9.2)."""
    tree.set_value(f"{_app_auth_uri(tree, account_uri, level)}/AAuthData", nonce)
