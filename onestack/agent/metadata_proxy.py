"""The metadata proxy: answers guests at 169.254.169.254:80 and forwards to the server.

The network driver hands over one listening socket per network (``metadata_socket``,
bound inside the network's DHCP namespace); ``MetadataProxy.serve`` serves it. A router
on networks without DHCP hands over one socket for all of them (bound inside its
namespace, where their requests are redirected), served with ``resolve``: the guest's
address tells which of the router's networks it is on (they never overlap). For each
connection the proxy reads one small HTTP/1.x request (GET or HEAD), takes the peer
address as the guest's fixed IP, asks ``lookup(network_id, ip)`` which instance that is,
and forwards the request to ``{base_url}/metadata{path}`` signed as Nova's metadata API
expects (``X-Instance-ID``, ``X-Tenant-ID``, ``X-Instance-ID-Signature``,
``X-Forwarded-For``). One request per connection; the answer always closes it.

It runs its own asyncio loop in a daemon thread, so the thread-based agent calls
``serve``/``stop``/``close`` from any thread. Each connection is bounded: request head
size, time to send it, time to take the answer, and the number of connections at once;
a slow or garbage client gets a 4xx (or nothing) and never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http
import logging
import posixpath
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], tuple[str, str] | None]
#: A listener's guest address -> the network it is on (None: not one of its networks).
Resolve = Callable[[str], str | None]

#: Largest request head (request line and headers) accepted.
MAX_HEAD = 8192
MAX_TARGET = 2048
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/1\.[01]$")
# Printable ASCII without space, backslash, '"', '<', '>', '`', '{', '|', '}', '^'.
_TARGET = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#\[\]]*$")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status


class MetadataProxy:
    """Serves metadata sockets; see the module docstring.

    ``lookup(network_id, ip)`` returns (instance uuid, project id) or None; it may block
    (it runs in a worker thread)."""

    def __init__(self, base_url: str, secret: bytes, lookup: Lookup, *,
                 client_timeout: float = 10.0, upstream_timeout: float = 30.0,
                 max_connections: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.lookup = lookup
        self.client_timeout = client_timeout
        self.upstream_timeout = upstream_timeout
        self.max_connections = max_connections
        #: network id -> (its accept loop, its listening socket)
        self._listeners: dict[str, tuple[asyncio.Task[None], socket.socket]] = {}
        #: network id -> its connections: handler task -> writer
        self._conns: dict[str, dict[asyncio.Task[None], asyncio.StreamWriter]] = {}
        #: listener -> how its guests' networks are found (listeners of several networks)
        self._resolvers: dict[str, Resolve] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="metadata-proxy", daemon=True)
        self._thread.start()

    # -- the public interface (any thread) ------------------------------------------------

    def serve(self, network_id: str, sock: socket.socket,
              resolve: Resolve | None = None) -> None:
        """Serve ``sock`` (a bound TCP socket, listening or not) for ``network_id``; the
        proxy owns it from now on. Serving the same socket again is a no-op; another
        socket replaces (and closes) the one served before. With ``resolve``,
        ``network_id`` only names the listener, and each guest's network is
        ``resolve(guest address)`` (a router's socket, for all its networks)."""
        if resolve is not None:
            self._resolvers[network_id] = resolve
        else:
            self._resolvers.pop(network_id, None)
        self._call(self._serve(network_id, sock))

    def stop(self, network_id: str) -> None:
        """Stop serving ``network_id``: close its socket and drop its connections.
        Idempotent."""
        self._resolvers.pop(network_id, None)
        self._call(self._stop(network_id))

    def serving(self) -> list[str]:
        """The networks served now."""
        return sorted(self._listeners)

    def close(self) -> None:
        """Stop everything and end the loop's thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> MetadataProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Any) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("the metadata proxy is closed")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(30)

    async def _serve(self, network_id: str, sock: socket.socket) -> None:
        current = self._listeners.get(network_id)
        if current is not None:
            if current[1] is sock:
                return
            await self._stop(network_id)
        sock.setblocking(False)
        sock.listen(128)
        task = asyncio.get_running_loop().create_task(self._accept(network_id, sock))
        self._listeners[network_id] = (task, sock)
        log.info("serving metadata for network %s on %s", network_id, _sockname(sock))

    async def _accept(self, network_id: str, sock: socket.socket) -> None:
        """Accept connections and start a handler for each. (Not ``asyncio.start_server``:
        on Python 3.11 a connection accepted just before its server closes leaks.)"""
        loop = asyncio.get_running_loop()
        conns = self._conns.setdefault(network_id, {})
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as e:  # out of descriptors, or an aborted connection
                log.warning("metadata proxy for network %s: accept failed: %s", network_id, e)
                await asyncio.sleep(0.1)
                continue
            if sum(len(c) for c in self._conns.values()) >= self.max_connections:
                with contextlib.suppress(OSError):
                    conn.send(_BUSY)
                conn.close()
                continue
            try:
                # Cancelled here, the transport (and so conn) is closed by asyncio.
                reader, writer = await asyncio.open_connection(sock=conn, limit=MAX_HEAD)
            except OSError:
                conn.close()
                continue
            handler = loop.create_task(self._connection(network_id, reader, writer))
            conns[handler] = writer
            handler.add_done_callback(lambda t: conns.pop(t, None))

    async def _stop(self, network_id: str) -> None:
        entry = self._listeners.pop(network_id, None)
        if entry is not None:
            task, sock = entry
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(OSError):
                sock.close()
            log.info("stopped serving metadata for network %s", network_id)
        for handler, writer in list(self._conns.pop(network_id, {}).items()):
            handler.cancel()
            writer.close()  # a handler cancelled before it ran cannot close it

    async def _shutdown(self) -> None:
        for network_id in {*self._listeners, *self._conns}:
            await self._stop(network_id)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=2)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.upstream_timeout, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        return self._client

    # -- one connection -------------------------------------------------------------------

    async def _connection(self, network_id: str, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(network_id, reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug here must not end the loop; answer and go on
            log.exception("metadata proxy failed on a request for network %s", network_id)
            with contextlib.suppress(Exception):
                await self._respond(writer, 500, b"Internal Server Error\n")
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1)
            except BaseException:  # e.g. a client that does not read: drop it
                writer.transport.abort()

    async def _handle(self, network_id: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        guest_ip = _peer_ip(peer)
        try:
            head = await asyncio.wait_for(_read_head(reader), self.client_timeout)
            method, path = _parse_head(head)
        except TimeoutError:
            await self._respond(writer, 408, b"Request Timeout\n")
            return
        except _BadRequest as e:
            if e.status:
                await self._respond(writer, e.status, f"{e}\n".encode(),
                                    allow=e.status == 405)
            return
        head_only = method == "HEAD"
        if guest_ip is None:
            await self._respond(writer, 404, b"Not Found\n", head_only)
            return
        resolve = self._resolvers.get(network_id)
        if resolve is not None:
            resolved = resolve(guest_ip)
            if resolved is None:
                log.info("metadata request from %s: on none of listener %s's networks",
                         guest_ip, network_id)
                await self._respond(writer, 404, b"Not Found\n", head_only)
                return
            network_id = resolved
        try:
            found = await asyncio.to_thread(self.lookup, network_id, guest_ip)
        except Exception:
            log.exception("metadata lookup failed for %s on network %s", guest_ip, network_id)
            await self._respond(writer, 500, b"Internal Server Error\n", head_only)
            return
        if not found:
            log.info("metadata request from unknown address %s on network %s",
                     guest_ip, network_id)
            await self._respond(writer, 404, b"Not Found\n", head_only)
            return
        instance_id, project_id = found
        headers = {
            "X-Instance-ID": instance_id,
            "X-Tenant-ID": project_id,
            "X-Instance-ID-Signature": hmac.new(self.secret, instance_id.encode(),
                                                hashlib.sha256).hexdigest(),
            "X-Forwarded-For": guest_ip,
        }
        url = f"{self.base_url}/metadata{path}"
        try:
            # HEAD is asked as GET upstream so Content-Length is the document's.
            upstream = await self._http().get(url, headers=headers)
        except httpx.TimeoutException:
            log.warning("metadata upstream timed out: %s", url)
            await self._respond(writer, 504, b"Gateway Timeout\n", head_only)
            return
        except httpx.HTTPError as e:
            log.warning("metadata upstream failed: %s: %s", url, e)
            await self._respond(writer, 502, b"Bad Gateway\n", head_only)
            return
        await self._respond(writer, upstream.status_code, upstream.content, head_only,
                            content_type=upstream.headers.get("content-type", "text/plain"),
                            allow=upstream.status_code == 405)

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                       head_only: bool = False, content_type: str = "text/plain",
                       allow: bool = False) -> None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        content_type = "".join(c for c in content_type if " " <= c <= "~")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(body)}", "Connection: close"]
        if allow:
            lines.append("Allow: GET, HEAD")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(body)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), self.client_timeout)


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (up to the blank line), at most ``MAX_HEAD`` bytes."""
    buf = b""
    while True:
        match = _HEAD_END.search(buf)
        if match:
            return buf[:match.start()]
        if len(buf) > MAX_HEAD:
            raise _BadRequest(431, "Request Header Fields Too Large")
        try:
            chunk = await reader.read(4096)
        except (ConnectionError, OSError) as e:
            raise _BadRequest(0) from e
        if not chunk:
            if buf.strip():
                raise _BadRequest(400, "Bad Request")
            raise _BadRequest(0)  # the client went away: nothing to answer
        buf += chunk


def _parse_head(head: bytes) -> tuple[str, str]:
    """(method, normalized path) of a request head; raises ``_BadRequest``."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as e:
        raise _BadRequest(400, "Bad Request") from e
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.match(parts[0]) or not _VERSION.match(parts[2]):
        raise _BadRequest(400, "Bad Request")
    for line in lines[1:]:
        name, sep, _ = line.partition(":")
        if not sep or not name or not _METHOD.match(name):
            raise _BadRequest(400, "Bad Request")
    method, target = parts[0], parts[1]
    if method not in ("GET", "HEAD"):
        raise _BadRequest(405, "Method Not Allowed")
    if len(target) > MAX_TARGET or not _TARGET.match(target):
        raise _BadRequest(400, "Bad Request")
    return method, _clean_path(target)


def _clean_path(target: str) -> str:
    """The path alone (no query or fragment), percent-decoded, normalized so it cannot
    leave ``/metadata`` upstream (no ``..``, no ``//``), and quoted again."""
    raw = target.split("#", 1)[0].split("?", 1)[0]
    try:
        path = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError as e:
        raise _BadRequest(400, "Bad Request") from e
    if any(c < " " or c == "\x7f" or c == "\\" for c in path):
        raise _BadRequest(400, "Bad Request")
    trailing = path.endswith("/") and path != "/"
    path = re.sub("/+", "/", posixpath.normpath("/" + path))
    if trailing and path != "/":
        path += "/"
    return urllib.parse.quote(path, safe="/-._~!$&'()*+,;=:@")


def _peer_ip(peer: Any) -> str | None:
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        ip = peer[0]
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[7:]
        return ip
    return None


def _sockname(sock: socket.socket) -> str:
    try:
        return str(sock.getsockname())
    except OSError:
        return "?"
