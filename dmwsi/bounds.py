"""Bounds on what one HTTP request may cost, enforced while it arrives.

Twisted reads a whole request body (into memory, or a temporary file past
100 kB) before any resource sees it, so a limit checked by the resource is
a limit checked too late: a 200 MB body has been spooled by then, and a
sender trickling a byte a second holds a connection open for as long as it
likes. :class:`BoundedSite` refuses such requests at the HTTP layer instead:

* **Body size per endpoint** (the first path segment: ``soap``, ``dm``):
  a declared Content-Length over the endpoint's limit is refused before a
  byte of the body is read; a chunked (or under-declared) body is counted
  as it arrives and refused the moment it passes the limit. Nothing past
  the limit is buffered.
* **An overall deadline per request**: request line, headers and body must
  all have arrived within ``deadline`` seconds of the request's first byte,
  whatever the pace (Twisted's own timeout is an idle timeout, reset by
  every byte).

A refused request gets its endpoint's answer (a SOAP Fault with the stable
code ``RequestTooLarge``, or plain HTTP 413 / 408 for a device, which cannot
be given a SyncML status before its message has been read) and the
connection is closed: the rest of the body is never read. Each refusal is
logged as one short line (size, source), never the body.
"""
import logging

from twisted.web import http, server

log = logging.getLogger(__name__)

REASONS = {413: b"Request Entity Too Large", 408: b"Request Timeout"}


class Refusal:
    """How one endpoint answers a refused request. ``answers``: {why (413 or
    408): (HTTP status, content type, body)}; a why it does not name gets
    plain HTTP with that status. (SOAP 1.1 carries a fault with HTTP 500.)"""

    def __init__(self, answers):
        self.answers = answers

    def response(self, why):
        status, content_type, body = self.answers.get(
            why, (why, b"text/plain; charset=utf-8", REASONS[why] + b"\n"))
        reason = REASONS.get(status, b"Internal Server Error")
        return (b"HTTP/1.1 %d %s\r\n" % (status, reason) +
                b"Content-Type: " + content_type + b"\r\n" +
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


class BoundedRequest(server.Request):
    """A request whose body is measured against its endpoint's limit as it arrives."""

    _limit = None
    _received = 0
    _refused = False

    def gotLength(self, length):
        # The request line is parsed, the path is known to the channel (Request.path is only set once
        # the whole body is in, which is too late to refuse it cheaply).
        self._endpoint = _first_segment(getattr(self.channel, "_path", b""))
        self._limit = self.channel.site.body_limits.get(self._endpoint)
        if self._limit is not None and length is not None and length > self._limit:
            self._refuse(413, f"declared body of {length} bytes over the {self._limit}-byte limit")
            self.content = _Discard()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self._refuse(413, f"body passed the {self._limit}-byte limit while arriving")
            self.content = _Discard()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        self.channel.request_complete()
        if self._refused:       # answered already; the connection is closing
            return
        super().requestReceived(command, path, version)

    def _refuse(self, status, why):
        self._refused = True
        self.channel.refuse(self._endpoint, status, why)


class BoundedChannel(http.HTTPChannel):
    """An HTTP connection whose every request has an overall deadline."""

    _deadline_call = None
    _refusing = False

    def dataReceived(self, data):
        if self._refusing:      # what a refused sender goes on sending is dropped unread
            return
        if self._deadline_call is None and data.strip():
            self._deadline_call = self.callLater(self.site.request_deadline, self._too_slow)
        super().dataReceived(data)

    def request_complete(self):
        """The current request is all in: its deadline is met."""
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    def _too_slow(self):
        self._deadline_call = None
        self.refuse(_first_segment(getattr(self, "_path", b"")), 408,
                    f"request not complete within {self.site.request_deadline} s")

    def refuse(self, endpoint, status, why):
        if self._refusing:
            return
        self._refusing = True
        peer = self.transport.getPeer()
        log.warning("refused HTTP request to /%s from %s: %s", endpoint.decode("ascii", "replace"),
                    getattr(peer, "host", peer), why)
        refusal = self.site.refusals.get(endpoint) or Refusal({})
        self.transport.write(refusal.response(status))
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.request_complete()
        super().connectionLost(reason)


class BoundedSite(server.Site):
    """A Site whose requests are bounded per endpoint (see the module docstring).

    ``body_limits``: {first path segment (bytes): max body bytes};
    ``refusals``: {first path segment: Refusal}; ``request_deadline``: seconds."""

    requestFactory = BoundedRequest
    protocol = BoundedChannel       # HTTP/1.1 only (Twisted's generic wrapper exists for HTTP/2, unused here)

    def __init__(self, resource, *, body_limits, refusals, request_deadline, **kwargs):
        super().__init__(resource, **kwargs)
        self.body_limits = dict(body_limits)
        self.refusals = dict(refusals)
        self.request_deadline = request_deadline


def _first_segment(path):
    return path.split(b"?", 1)[0].lstrip(b"/").split(b"/", 1)[0]


class _Discard:
    """Stands for the body of a refused request: nothing is kept."""

    def write(self, data):
        pass

    def seek(self, *args):
        pass

    def read(self, *args):
        return b""

    def close(self):
        pass
