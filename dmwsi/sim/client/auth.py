"""How the simulated device authenticates itself and the server (§9, reference §3.5, §9.4).

The client's SyncHdr Cred (basic, MD5 digest) or HMAC header from DMAcc
CLCRED; the server's Cred or HMAC header checked against SRVCRED and answered
212/200/401/407, with a Chal carrying a fresh nonce. ``ClientAuth`` is a
part of ``SimulatedDevice``: it works on the device's tree and session.
"""
from __future__ import annotations

from typing import Mapping

from dmwsi.dm import auth
from dmwsi.dm.codes import StatusCode
from dmwsi.dm.message import AUTH_BASIC, AUTH_MAC, AUTH_MD5, Chal, Cred, Message
from dmwsi.sim.objects import CLIENT_CREDENTIALS, SERVER_CREDENTIALS, read_app_auth, store_nonce

SCHEME_BY_AAUTH_TYPE = {"BASIC": "basic", "DIGEST": "md5", "HMAC": "hmac"}
SCHEME_BY_CRED_TYPE = {AUTH_BASIC: "basic", AUTH_MD5: "md5", AUTH_MAC.lower(): "hmac"}
CRED_TYPE_BY_SCHEME = {"basic": AUTH_BASIC, "md5": AUTH_MD5, "hmac": AUTH_MAC}


class ClientAuth:
    """Credentials of ``SimulatedDevice`` (mixed into it)."""

    def client_credentials(self):
        return read_app_auth(self.tree, self.account_uri, CLIENT_CREDENTIALS)

    def server_credentials(self):
        return read_app_auth(self.tree, self.account_uri, SERVER_CREDENTIALS)

    def _account_scheme(self) -> str:
        return SCHEME_BY_AAUTH_TYPE.get(self.client_credentials().auth_type.upper(), "md5")

    @staticmethod
    def _chal_nonce(chal: Chal | None) -> bytes | None:
        if chal is None or not chal.next_nonce:
            return None
        try:
            return auth.b64decode(chal.next_nonce)
        except ValueError:
            return None

    def _store_client_nonce(self, nonce: bytes) -> None:
        store_nonce(self.tree, self.account_uri, CLIENT_CREDENTIALS, nonce)

    def _verify_server(self, msg: Message, headers: Mapping[str, str], body: bytes) -> tuple[int, Chal | None]:
        """SyncHdr Status code (and Chal) answering the server's credentials."""
        s = self._session
        srv = self.server_credentials()
        cred = msg.header.cred
        mac = headers.get(auth.HMAC_HEADER)
        if mac is not None:
            ok = auth.hmac_verify(mac, srv.name, srv.secret, srv.nonce, body)
            if ok:
                s.server_authenticated = True
                return StatusCode.OK, None          # HMAC covers each message: 200 (§9.4)
            return StatusCode.INVALID_CREDENTIALS, self._new_server_chal("hmac")
        if s.server_authenticated:
            return StatusCode.OK, None              # authenticated for the rest of the session
        if cred is not None and cred.data:
            kind = (cred.type or AUTH_BASIC).lower()
            if kind == AUTH_MD5:
                ok = auth.md5_verify(cred.data, srv.name, srv.secret, srv.nonce)
            elif kind == AUTH_BASIC:
                ok = auth.basic_verify(cred.data, srv.name, srv.secret)
            else:
                ok = False
            if ok:
                s.server_authenticated = True
                chal = self._new_server_chal("md5") if self.behaviour.issue_server_nonces else None
                return StatusCode.AUTH_ACCEPTED, chal
            return StatusCode.INVALID_CREDENTIALS, self._new_server_chal("md5")
        if self.behaviour.require_server_auth:
            scheme = "hmac" if s.scheme == "hmac" else "md5"
            return StatusCode.MISSING_CREDENTIALS, self._new_server_chal(scheme)
        return StatusCode.OK, None

    def _new_server_chal(self, scheme: str) -> Chal:
        """A fresh nonce for the server, sent in a Chal; it becomes SRVCRED
        AAuthData when the message carrying it goes out (``_send``)."""
        nonce = auth.new_nonce()
        self._session.new_server_nonce = nonce
        return Chal(type=CRED_TYPE_BY_SCHEME[scheme], format="b64", next_nonce=auth.b64encode(nonce))

    def _client_cred(self) -> Cred | None:
        s = self._session
        if s.authenticated or s.scheme == "hmac":
            return None
        cl = self.client_credentials()
        secret = self._secret(cl.secret)
        if s.scheme == "basic":
            return Cred(type=AUTH_BASIC, format="b64", data=auth.basic_encode(cl.name, secret))
        return Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode(cl.name, secret, cl.nonce))

    def _secret(self, secret: str) -> str:
        return secret + "-wrong" if self.behaviour.wrong_credentials else secret
