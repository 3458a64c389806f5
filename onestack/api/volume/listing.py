"""The paged collections of the Block Storage API (volumes, snapshots, backups): one
answer for a list and its ``/detail`` form, sorted and paged as Cinder does, with the
next-page link and (3.45+) ``with_count``. What differs per collection, how an item
is rendered and what a sort key reads, is the caller's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from onestack.api.common import json_response
from onestack.api.volume.common import next_link, query_flag, sort_and_page
from onestack.api.volume.microversion import version


class Listed(Protocol):
    @property
    def id(self) -> str: ...


L = TypeVar("L", bound=Listed)


def sort_value(item: Any, key: str) -> Any:
    """An item's value for a sort key: the attribute of that name (``display_name``
    is Cinder's old name for ``name``)."""
    return getattr(item, "name" if key == "display_name" else key)


def paged_list(request: Request, collection: str, detail: bool, found: list[L],
               sort_keys: Sequence[str], render: Callable[[list[L]], list[dict[str, Any]]],
               max_limit: int, key_of: Callable[[L, str], Any] = sort_value) -> Response:
    """``{collection: [...]}`` for the page of ``found`` the query asks for, each item
    rendered by ``render`` (it gets the whole page, to read what it needs in one go);
    ``{collection}_links`` when the page is full, ``count`` (3.45+, ``with_count``)
    of all that ``found`` holds."""
    page, more, total = sort_and_page(request, found, sort_keys, key_of,
                                      lambda item: item.id, max_limit)
    body: dict[str, Any] = {collection: render(page)}
    if more and page:
        body[f"{collection}_links"] = next_link(
            request, f"{collection}/detail" if detail else collection, page[-1].id)
    if version(request) >= (3, 45) and query_flag(request, "with_count"):
        body["count"] = total
    return json_response(body)
