"""The dashboard's way to the cloud: the public APIs, with the user's own token.

Every call goes through the same ASGI application the APIs are served by (httpx's
``ASGITransport``), so it passes the same middleware, routing and policy checks as a
request from the ``openstack`` CLI: the dashboard has no other door into the services.
A failed call raises ``ApiError`` carrying the API's own message (each service's fault
body is read the way its clients read it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

#: The Compute microversion the dashboard speaks (keypair generation needs < 2.92).
COMPUTE_VERSION = "2.91"
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class ApiError(Exception):
    """An API call that failed: its status and the API's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def fault_message(response: httpx.Response) -> str:
    """The message of a fault body, whichever service's shape it has."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for value in body.values():   # {"error": {...}}, {"NeutronError": {...}}, nova's
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return f"HTTP {response.status_code}"


class Api:
    """One user's calls. ``token`` is None only for the login itself."""

    def __init__(self, client: httpx.AsyncClient, token: str | None) -> None:
        self.client = client
        self.token = token

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None,
                   content: Any = None, ok: tuple[int, ...] = ()) -> httpx.Response:
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["X-Auth-Token"] = self.token
        if path.startswith("/compute/"):
            hdrs["OpenStack-API-Version"] = f"compute {COMPUTE_VERSION}"
        hdrs.update(headers or {})
        r = await self.client.request(method, path, json=json, params=params, headers=hdrs,
                                      content=content, timeout=TIMEOUT)
        if r.status_code >= 400 and r.status_code not in ok:
            raise ApiError(r.status_code, fault_message(r))
        return r

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params=params or None)).json()

    async def post(self, path: str, body: Any) -> Any:
        r = await self.call("POST", path, json=body)
        return r.json() if r.content else None

    async def put(self, path: str, body: Any) -> Any:
        r = await self.call("PUT", path, json=body)
        return r.json() if r.content else None

    async def delete(self, path: str) -> None:
        await self.call("DELETE", path)

    async def upload(self, path: str, chunks: AsyncIterator[bytes], length: str | None
                     ) -> None:
        """Stream a body (an image's data) through without holding it."""
        headers = {"Content-Type": "application/octet-stream"}
        if length:
            headers["Content-Length"] = length
        await self.call("PUT", path, content=chunks, headers=headers)
