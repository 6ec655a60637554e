"""HTTP request bounds (issue 10 items 2 and 3): a BoundedSite on a loopback
port in the test reactor, attacked with raw sockets (client libraries would
normalise what an attacker sends)."""
import socket
import time

import pytest
from twisted.internet.threads import blockingCallFromThread
from twisted.web import resource

from dmwsi.bounds import BoundedSite, Refusal

LIMIT = 1000
FAULT = b"<soap:Envelope>RequestTooLarge</soap:Envelope>"


class Echo(resource.Resource):
    """Answers with the length of the body it was given, and remembers it."""
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render_POST(self, request):
        body = request.content.read()
        self.bodies.append(body)
        return b"got %d" % len(body)


@pytest.fixture
def site(running_reactor):
    root = resource.Resource()
    echo = Echo()
    root.putChild(b"soap", echo)
    root.putChild(b"dm", echo)
    site = BoundedSite(root, body_limits={b"soap": LIMIT, b"dm": LIMIT // 2},
                       refusals={b"soap": Refusal({413: (500, b"text/xml; charset=utf-8", FAULT)})},
                       request_deadline=1.0)
    port = blockingCallFromThread(running_reactor, running_reactor.listenTCP, 0, site, interface="127.0.0.1")
    site.echo, site.port_number = echo, port.getHost().port
    yield site
    blockingCallFromThread(running_reactor, port.stopListening)


def connect(site):
    sock = socket.create_connection(("127.0.0.1", site.port_number), timeout=5)
    return sock


def answer(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def head(path, extra=b""):
    return b"POST /" + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n" + extra


def test_a_body_within_the_limit_reaches_the_resource_whole(site):
    sock = connect(site)
    sock.sendall(head(b"soap", b"Content-Length: 1000\r\nConnection: close\r\n\r\n") + b"x" * 1000)
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"got 1000")
    assert site.echo.bodies == [b"x" * 1000]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(site):
    sock = connect(site)
    sock.sendall(head(b"soap", b"Content-Length: 200000000\r\n\r\n"))   # 200 MB announced, none sent
    reply = answer(sock)                 # answered and closed without waiting for a byte of it
    assert reply.startswith(b"HTTP/1.1 500") and reply.endswith(FAULT)     # SOAP 1.1: a fault is HTTP 500
    assert site.echo.bodies == []


def test_a_chunked_body_is_refused_the_moment_it_passes_the_limit(site):
    sock = connect(site)
    sock.sendall(head(b"dm", b"Transfer-Encoding: chunked\r\n\r\n"))
    sent = 0
    try:
        for _ in range(100):             # up to 100 kB offered in 1 kB chunks; the limit is 500 bytes
            sock.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
            sent += 1024
            time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 413") and b"Too Large" in reply     # a device gets plain HTTP 413
    assert sent < 100 * 1024 and site.echo.bodies == []


def test_a_trickled_request_is_cut_off_at_the_deadline_not_the_idle_timeout(site):
    sock = connect(site)
    start = time.monotonic()
    sock.sendall(head(b"soap", b"Content-Length: 100\r\n\r\n"))
    try:
        for _ in range(50):              # one byte every 0.1 s: never idle, never done
            sock.sendall(b"x")
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < 4 and site.echo.bodies == []


def test_slow_headers_are_cut_off_too(site):
    sock = connect(site)
    sock.sendall(b"POST /soap HTTP/1.1\r\n")
    try:
        for n in range(40):
            sock.sendall(b"X-%d: y\r\n" % n)
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert answer(sock).startswith(b"HTTP/1.1 408")


def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(site):
    sock = connect(site)
    for n in range(3):
        sock.sendall(head(b"soap", b"Content-Length: 5\r\n\r\n") + b"hello")
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"got 5")
        time.sleep(0.6)                  # 1.8 s in all on one connection: over one deadline, fine
    sock.close()


def test_the_site_still_serves_after_refusals(site):
    test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(site)
    test_a_body_within_the_limit_reaches_the_resource_whole(site)


# ---- the real server: the bounds its configuration sets -------------------------------------

def test_the_server_refuses_oversized_bodies_on_both_endpoints_before_reading_them(start_server):
    srv = start_server(server={"max_request_bytes": 50_000}, dm={"max_body_bytes": 20_000})
    port = int(srv.soap_url.split(":")[2].split("/")[0])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 200000000\r\n\r\n")
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 500") and b"<code>RequestTooLarge</code>" in reply.replace(b"dmwsi:", b"")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /dm HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.syncml.dm+xml\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(100):
            sock.sendall(b"400\r\n" + b"<" * 1024 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert answer(sock).startswith(b"HTTP/1.1 413")
    # and it goes on serving: a real answer, over a new connection
    from tests.fuzz.test_fuzz_soap import GET_SERVICE_INFO
    from tests.security.test_sec_http_attacks import send
    status, _, body = send(srv.soap_url, "POST", GET_SERVICE_INFO)
    assert status == 200 and b"GetServiceInfo" in body
