"""WBXML <-> XML for DM messages, via ctypes on libwbxml (Debian ``libwbxml2-1``).

libwbxml carries the SyncML 1.2, MetInf 1.2 and DM DDF 1.2 code pages
(reference §16.3), so no token tables are duplicated here.  Output is WBXML
1.2 with the numeric SyncML 1.2 public id and UTF-8, as libdmclient sends
(``02 A4 01 6A``).  The string table is disabled: every string goes inline,
which any 1.x decoder reads and which keeps messages deterministic.

Also the DM content types and ``is_wbxml`` for picking a codec per request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dmwsi.errors import DmwsiError

# Content types (reference §1).  The DS types are accepted from clients such
# as libdmclient's test client; answers always use the DM types.
DM_XML = "application/vnd.syncml.dm+xml"
DM_WBXML = "application/vnd.syncml.dm+wbxml"
DS_XML = "application/vnd.syncml+xml"
DS_WBXML = "application/vnd.syncml+wbxml"
NOTIFICATION = "application/vnd.syncml.notification"

LIBRARY = "libwbxml2.so.1"

# Values of the enums in wbxml.h / wbxml_conv.h (libwbxml 0.11).
_WBXML_OK = 0
_WBXML_VERSION_12 = 0x02
_WBXML_GEN_XML_COMPACT = 0
_WBXML_CHARSET_UTF_8 = 106
_WBXML_LANG_SYNCML_SYNCML12 = 2201
_ERROR_UNKNOWN_PUBLIC_ID = 64
_ERROR_LANG_TABLE_UNDEFINED = 14


class WbxmlError(DmwsiError, ValueError):
    """libwbxml refused the input (message is libwbxml's error string)."""


def is_wbxml(content_type: str | None) -> bool:
    """True for the DM/DS WBXML media types; parameters and case are ignored."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in (DM_WBXML, DS_WBXML)


_lib = None
_lock = threading.Lock()


def _library():
    """Load libwbxml once, declaring the exact C signatures (WB_ULONG = unsigned int)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError as e:
            raise WbxmlError(f"{LIBRARY} not loadable ({e}); install the Debian package libwbxml2-1") from None
        p, u8p, u8pp, ulp = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint)
        signatures = {
            "wbxml_conv_xml2wbxml_create": (ctypes.c_int, [ctypes.POINTER(p)]),
            "wbxml_conv_xml2wbxml_set_version": (None, [p, ctypes.c_int]),
            "wbxml_conv_xml2wbxml_disable_string_table": (None, [p]),
            "wbxml_conv_xml2wbxml_enable_preserve_whitespaces": (None, [p]),
            "wbxml_conv_xml2wbxml_run": (ctypes.c_int, [p, u8p, ctypes.c_uint, u8pp, ulp]),
            "wbxml_conv_xml2wbxml_destroy": (None, [p]),
            "wbxml_conv_wbxml2xml_create": (ctypes.c_int, [ctypes.POINTER(p)]),
            "wbxml_conv_wbxml2xml_set_gen_type": (None, [p, ctypes.c_int]),
            "wbxml_conv_wbxml2xml_set_charset": (None, [p, ctypes.c_int]),
            "wbxml_conv_wbxml2xml_set_language": (None, [p, ctypes.c_int]),
            "wbxml_conv_wbxml2xml_enable_preserve_whitespaces": (None, [p]),
            "wbxml_conv_wbxml2xml_run": (ctypes.c_int, [p, u8p, ctypes.c_uint, u8pp, ulp]),
            "wbxml_conv_wbxml2xml_destroy": (None, [p]),
            "wbxml_errors_string": (ctypes.c_char_p, [ctypes.c_int]),
            # Not in the public headers but exported; it is the matching free()
            # for buffers the converters allocate.
            "wbxml_free": (None, [p]),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _lib = lib
        return lib


def _check(lib, rc: int, what: str) -> None:
    if rc != _WBXML_OK:
        msg = lib.wbxml_errors_string(rc)
        raise WbxmlError(f"{what}: {msg.decode('utf-8', 'replace') if msg else 'error'} (libwbxml code {rc})")


def _convert(prefix: str, configure, data: bytes) -> tuple[int, bytes]:
    """Create a converter, configure it, run it on ``data``, free everything.

    Returns (libwbxml return code, output); output is b"" unless the code is OK.
    """
    lib = _library()
    conv = ctypes.c_void_p()
    _check(lib, getattr(lib, f"{prefix}_create")(ctypes.byref(conv)), f"{prefix}_create")
    out, out_len = ctypes.c_void_p(), ctypes.c_uint(0)
    try:
        configure(lib, conv)
        rc = getattr(lib, f"{prefix}_run")(conv, data, len(data), ctypes.byref(out), ctypes.byref(out_len))
        return rc, (ctypes.string_at(out, out_len.value) if rc == _WBXML_OK else b"")
    finally:
        if out:
            lib.wbxml_free(out)
        getattr(lib, f"{prefix}_destroy")(conv)


def xml_to_wbxml(xml: bytes) -> bytes:
    """Encode a SyncML XML document as WBXML 1.2 without a string table."""

    def configure(lib, conv):
        lib.wbxml_conv_xml2wbxml_set_version(conv, _WBXML_VERSION_12)
        lib.wbxml_conv_xml2wbxml_disable_string_table(conv)
        # Otherwise libwbxml trims leading/trailing blanks inside <Data>.
        lib.wbxml_conv_xml2wbxml_enable_preserve_whitespaces(conv)

    rc, out = _convert("wbxml_conv_xml2wbxml", configure, bytes(xml))
    _check(_library(), rc, "xml_to_wbxml")
    return out


def wbxml_to_xml(data: bytes) -> bytes:
    """Decode WBXML 1.x to compact UTF-8 XML (with the DOCTYPE libwbxml adds)."""
    if not data:
        raise WbxmlError("wbxml_to_xml: empty input")

    def configure(lang):
        def apply(lib, conv):
            lib.wbxml_conv_wbxml2xml_set_gen_type(conv, _WBXML_GEN_XML_COMPACT)
            lib.wbxml_conv_wbxml2xml_set_charset(conv, _WBXML_CHARSET_UTF_8)
            lib.wbxml_conv_wbxml2xml_enable_preserve_whitespaces(conv)  # Data is exact
            if lang:
                lib.wbxml_conv_wbxml2xml_set_language(conv, lang)

        return apply

    rc, out = _convert("wbxml_conv_wbxml2xml", configure(None), bytes(data))
    if rc in (_ERROR_UNKNOWN_PUBLIC_ID, _ERROR_LANG_TABLE_UNDEFINED):
        # Anonymous or unusual public id: this is a DM endpoint, so read it
        # with the SyncML 1.2 tables (§16.1: accept any public id form).
        rc, out = _convert("wbxml_conv_wbxml2xml", configure(_WBXML_LANG_SYNCML_SYNCML12), bytes(data))
    _check(_library(), rc, "wbxml_to_xml")
    return out
