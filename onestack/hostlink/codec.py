"""Wire types to JSON values and back, for transports that serialize (HTTP).

``to_wire(obj)`` turns a wire type (or a list/dict of them) into JSON values;
``from_wire(tp, data)`` rebuilds ``tp`` (a dataclass, ``list[...]``, ``X | None``, the
disk union, ...) from them. ``bytes`` travel as base64 strings.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import types
import typing
from typing import Any

from onestack.hostlink import types as wire


def to_wire(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj) if isinstance(obj, (set, frozenset)) else obj
        return [to_wire(v) for v in items]
    return obj


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(wire))


def from_wire(tp: Any, data: Any) -> Any:
    """``data`` (JSON values) as an instance of the type ``tp``."""
    if tp is Any:
        return data
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        if isinstance(data, dict) and all(dataclasses.is_dataclass(a) for a in kinds) \
                and len(kinds) > 1:
            cls = wire.DISK_KINDS.get(data.get("kind", ""))
            if cls is None or cls not in kinds:
                raise ValueError(f"unknown kind {data.get('kind')!r} for {tp}")
            return from_wire(cls, data)
        return from_wire(kinds[0], data) if len(kinds) == 1 else data
    if origin is typing.Literal:
        return data
    if origin in (list, set, frozenset, tuple):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        if origin is tuple and not (len(args) == 2 and args[1] is ...):
            return tuple(from_wire(a, v) for a, v in zip(args, data, strict=True))
        return origin(from_wire(item, v) for v in data)
    if origin is dict:
        args = typing.get_args(tp)
        value = args[1] if args else Any
        return {k: from_wire(value, v) for k, v in data.items()}
    if tp is bytes:
        return base64.b64decode(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: from_wire(hints[f.name], data[f.name])
                  for f in dataclasses.fields(tp) if f.init and f.name in data}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    return data
