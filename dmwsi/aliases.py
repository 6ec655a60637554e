"""Device aliases (OES6): callers without the ``see-identity`` permission
know devices only by an opaque alias of their own (it stands wherever a
``deviceId`` would), and never receive an MSISDN, IMSI, IMEI or real device
id in a response or a push.

An alias is a keyed HMAC of (principal, device id): stable, different for
every principal, meaningless without the server's key. Aliases shown to a
principal are remembered, so it can address the device by them.
"""
import base64
import hashlib
import hmac
import secrets

IDENTITY_FIELDS = ("msisdn", "imsi", "imei")
IDENTITY_NODES = ("./DevInfo/DevId",)       # the device id as a node value


def load_key(config):
    """``[security] alias_key``, else a key generated once in the data directory."""
    configured = config["security"].get("alias_key", "")
    if configured:
        return configured.encode()
    path = config.data_dir / "alias.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


class Aliases:
    def __init__(self, key, store):
        self.key = key
        self.store = store

    def alias(self, principal, device_id):
        digest = hmac.new(self.key, f"{principal}\0{device_id}".encode(), hashlib.sha256).digest()
        return "A" + base64.b32encode(digest[:15]).decode().lower()

    def device(self, principal, alias):
        return self.store.device_for_alias(principal, alias)

    def hide(self, principal, value):
        """``value`` (a response or push payload of plain dicts/lists) with every
        device identity replaced by the principal's alias or left out."""
        shown = {}
        hidden = self._walk(principal, value, shown)
        self.store.remember_aliases(principal, shown.items())
        return hidden

    def _walk(self, principal, value, shown):
        if isinstance(value, list):
            return [self._walk(principal, v, shown) for v in value
                    if not (isinstance(v, dict) and v.get("uri") in IDENTITY_NODES)]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, v in value.items():
            if key in IDENTITY_FIELDS:
                continue
            if key == "deviceId" and isinstance(v, str):
                out[key] = self._alias(principal, v, shown)   # the id this caller knows the device by
            elif key == "deviceIds" and isinstance(v, list):
                out[key] = [self._alias(principal, d, shown) for d in v]
            else:
                out[key] = self._walk(principal, v, shown)
        return out

    def _alias(self, principal, device_id, shown):
        alias = self.alias(principal, device_id)
        shown[alias] = device_id
        return alias
