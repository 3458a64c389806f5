"""The metadata proxy: forwarding, signing, and robustness against bad clients.

The proxy serves plain loopback sockets here (the guest is 127.0.0.1) in front of a stub
upstream HTTP server that records what it was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from onestack.agent.metadata_proxy import MetadataProxy

SECRET = b"s" * 32
INSTANCE = "9a0b8c7d-1111-2222-3333-444455556666"
PROJECT = "p" * 32


class Upstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append({"path": self.path, "headers": dict(self.headers)})
                if outer.delay:
                    time.sleep(outer.delay)
                if self.path.endswith("/missing"):
                    body, status, ctype = b"404 Not Found\n", 404, "text/plain"
                else:
                    body = json.dumps({"path": self.path}).encode()
                    status, ctype = 200, "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Served:
    def __init__(self, proxy: MetadataProxy, sock: socket.socket, lookups: list) -> None:
        self.proxy = proxy
        self.port = sock.getsockname()[1]
        self.lookups = lookups

    def get(self, path: str, method: str = "GET") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path)
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def make_proxy(upstream: Upstream, known: dict | None = None, **kw) -> tuple[MetadataProxy,
                                                                           list]:
    known = {("net-1", "127.0.0.1"): (INSTANCE, PROJECT)} if known is None else known
    lookups: list = []

    def lookup(network_id: str, ip: str):
        lookups.append((network_id, ip))
        if ip == "boom":
            raise RuntimeError("db down")
        return known.get((network_id, ip))

    return MetadataProxy(upstream.url, SECRET, lookup, **kw), lookups


@pytest.fixture
def served(upstream) -> Iterator[Served]:
    proxy, lookups = make_proxy(upstream, client_timeout=1.0)
    sock = listening_socket()
    proxy.serve("net-1", sock)
    yield Served(proxy, sock, lookups)
    proxy.close()


def test_forwards_signed_request(served, upstream):
    r = served.get("/openstack/latest/meta_data.json")
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/json"
    assert r.getheader("Connection") == "close"
    assert json.loads(r.body) == {"path": "/metadata/openstack/latest/meta_data.json"}
    assert int(r.getheader("Content-Length")) == len(r.body)
    assert served.lookups == [("net-1", "127.0.0.1")]
    headers = {k.lower(): v for k, v in upstream.requests[-1]["headers"].items()}
    assert headers["x-instance-id"] == INSTANCE
    assert headers["x-tenant-id"] == PROJECT
    assert headers["x-forwarded-for"] == "127.0.0.1"
    expected = hmac.new(SECRET, INSTANCE.encode(), hashlib.sha256).hexdigest()
    assert headers["x-instance-id-signature"] == expected


def test_paths_are_normalized_and_kept_under_metadata(served, upstream):
    assert json.loads(served.get("/latest/meta-data/").body)["path"] == \
        "/metadata/latest/meta-data/"
    assert json.loads(served.get("/").body)["path"] == "/metadata/"
    assert json.loads(served.get("/latest?x=1").body)["path"] == "/metadata/latest"
    for sneaky in ("/../v3/auth/tokens", "/%2e%2e/v3", "//evil/x", "/a/../../../v3"):
        path = json.loads(served.get(sneaky).body)["path"]
        assert path.startswith("/metadata/") and ".." not in path, (sneaky, path)


def test_upstream_status_and_head(served):
    r = served.get("/openstack/missing")
    assert r.status == 404 and r.body == b"404 Not Found\n"
    r = served.get("/openstack/latest/meta_data.json", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert int(r.getheader("Content-Length")) > 0


def test_unknown_address_is_404(upstream):
    proxy, lookups = make_proxy(upstream, known={})
    sock = listening_socket()
    try:
        proxy.serve("net-1", sock)
        r = Served(proxy, sock, lookups).get("/latest/meta-data/")
        assert r.status == 404
        assert lookups == [("net-1", "127.0.0.1")]
        assert upstream.requests == []
    finally:
        proxy.close()


def test_garbage_requests_get_4xx_and_do_not_hurt_the_loop(served, upstream):
    cases = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
        b"GET\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET nohost HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nbroken header line\r\n\r\n",
        b"GET /%00 HTTP/1.1\r\n\r\n",
        b"GET /%c3%28 HTTP/1.1\r\n\r\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n",
        b"partial request then EOF",
    ]
    for data in cases:
        reply = served.raw(data)
        assert reply.startswith(b"HTTP/1.1 400 "), (data[:40], reply[:60])
        assert b"Connection: close" in reply
    reply = served.raw(b"POST /openstack/latest/password HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in reply
    reply = served.raw(b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    # an empty connection gets nothing, and bare-LF requests are fine
    assert served.raw(b"") == b""
    assert served.raw(b"GET /latest HTTP/1.0\n\n").startswith(b"HTTP/1.1 200 ")
    assert upstream.requests and upstream.requests[-1]["path"] == "/metadata/latest"
    # still serving
    assert served.get("/openstack").status == 200


def test_slow_client_times_out_without_blocking_others(served):
    slow = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        slow.sendall(b"GET /latest HTTP/1.1\r\n")  # never finishes its head
        started = time.monotonic()
        assert served.get("/openstack").status == 200
        assert time.monotonic() - started < 1.0
        reply = slow.recv(4096)  # the proxy gives up after client_timeout (1s)
        assert reply.startswith(b"HTTP/1.1 408 ")
    finally:
        slow.close()


def test_too_many_connections(upstream):
    proxy, lookups = make_proxy(upstream, client_timeout=1.0, max_connections=2)
    sock = listening_socket()
    try:
        proxy.serve("net-1", sock)
        served = Served(proxy, sock, lookups)
        idle = [socket.create_connection(("127.0.0.1", served.port), timeout=5)
                for _ in range(2)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as third:
            assert third.recv(4096).startswith(b"HTTP/1.1 503 ")  # at once, unread
        for s in idle:  # the idle ones time out, and then there is room again
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")
            s.close()
        time.sleep(0.2)
        assert served.get("/latest").status == 200
    finally:
        proxy.close()


def test_lookup_failure_and_upstream_down(upstream):
    proxy, lookups = make_proxy(upstream)
    sock = listening_socket()
    try:
        proxy.serve("net-1", sock)
        served = Served(proxy, sock, lookups)
        upstream.close()
        r = served.get("/latest")
        assert r.status == 502
    finally:
        proxy.close()

    def failing(network_id: str, ip: str):
        raise RuntimeError("database is down")

    proxy = MetadataProxy("http://127.0.0.1:9", SECRET, failing)
    sock = listening_socket()
    try:
        proxy.serve("net-1", sock)
        assert Served(proxy, sock, []).get("/latest").status == 500
    finally:
        proxy.close()


def test_upstream_timeout_is_504(upstream):
    upstream.delay = 1.5
    proxy, lookups = make_proxy(upstream, upstream_timeout=0.3)
    sock = listening_socket()
    try:
        proxy.serve("net-1", sock)
        assert Served(proxy, sock, lookups).get("/latest").status == 504
    finally:
        proxy.close()


def test_serve_stop_and_several_networks(upstream):
    known = {("net-1", "127.0.0.1"): (INSTANCE, PROJECT),
             ("net-2", "127.0.0.1"): ("other-instance", PROJECT)}
    proxy, lookups = make_proxy(upstream, known=known)
    try:
        a, b = listening_socket(), listening_socket()
        proxy.serve("net-1", a)
        proxy.serve("net-1", a)  # the same socket again: a no-op
        proxy.serve("net-2", b)
        assert proxy.serving() == ["net-1", "net-2"]
        sa, sb = Served(proxy, a, lookups), Served(proxy, b, lookups)
        assert sa.get("/latest").status == 200
        assert upstream.requests[-1]["headers"]["X-Instance-ID"] == INSTANCE
        assert sb.get("/latest").status == 200
        assert upstream.requests[-1]["headers"]["X-Instance-ID"] == "other-instance"
        proxy.stop("net-1")
        proxy.stop("net-1")  # idempotent
        assert proxy.serving() == ["net-2"]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sa.port), timeout=2).close()
        assert sb.get("/latest").status == 200
        # another socket for a served network replaces the old one
        c = listening_socket()
        proxy.serve("net-2", c)
        assert Served(proxy, c, lookups).get("/latest").status == 200
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sb.port), timeout=2).close()
    finally:
        proxy.close()


def test_close_stops_cleanly(upstream):
    proxy, lookups = make_proxy(upstream)
    sock = listening_socket()
    proxy.serve("net-1", sock)
    port = sock.getsockname()[1]
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # an open connection
    thread = proxy._thread
    proxy.close()
    proxy.close()  # idempotent
    assert not thread.is_alive()
    try:  # dropped: closed if it was accepted, reset if it was still in the backlog
        assert idle.recv(10) == b""
    except ConnectionResetError:
        pass
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError):
        proxy.serve("net-1", listening_socket())


def test_a_router_listener_tells_the_network_by_the_guest_address(upstream):
    """A router's socket serves several networks: ``resolve`` maps the guest's address
    to its network, and an address on none of them is a 404 without a lookup."""
    proxy, lookups = make_proxy(upstream, {("net-b", "127.0.0.1"): (INSTANCE, PROJECT)})
    networks = {"127.0.0.1": "net-b"}
    sock = listening_socket()
    try:
        proxy.serve("router-r1", sock, resolve=networks.get)
        served = Served(proxy, sock, lookups)
        r = served.get("/openstack/latest/meta_data.json")
        assert r.status == 200 and lookups == [("net-b", "127.0.0.1")]
        networks.clear()  # the guest's leg is gone from the router
        assert served.get("/openstack/latest/meta_data.json").status == 404
        assert lookups == [("net-b", "127.0.0.1")]
        proxy.stop("router-r1")
        assert proxy.serving() == []
    finally:
        proxy.close()
