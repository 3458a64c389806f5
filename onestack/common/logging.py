"""Structured logs that carry the request id.

Each record is one JSON object per line in ``<state_dir>/logs/onestack.log`` and a
short human line on the console. The request id of the request being served is kept in a
context variable and added to every record made while serving it.

Log lines carry what clients sent (paths, names), so a record must never be able to
look like more than one: the JSON file escapes by construction (``json.dumps`` with
``ensure_ascii``); the console escapes control characters (``escape_control``) in every
field and indents the lines of a traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from pathlib import Path

from onestack.common.statedir import create_private

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "onestack_request_id", default=None)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry and key != "request_id":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: C0 controls, DEL, C1 controls (NEL among them), Unicode's line and paragraph
#: separators and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``,
    ``\\x1b``, ``\\u2028``), so that it prints as part of one line."""
    return _CONTROL.sub(_escape_char, text)


class ConsoleFormatter(logging.Formatter):
    """``level   logger: [request id] message``, one line per record whatever the fields
    hold; a traceback follows on lines of its own, each indented."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        prefix = f"[{escape_control(str(rid))}] " if rid else ""
        line = (f"{escape_control(record.levelname.lower()):7} "
                f"{escape_control(record.name)}: {prefix}"
                f"{escape_control(record.getMessage())}")
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for text in extra:
            line += "".join("\n    " + escape_control(part) for part in text.splitlines())
        return line


def setup_logging(log_dir: Path | None, level: str = "info", console: bool = True) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level.upper())
    flt = RequestIdFilter()
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private(log_dir / "onestack.log")
        fh = logging.FileHandler(log_dir / "onestack.log")
        fh.setFormatter(JsonFormatter())
        fh.addFilter(flt)
        root.addHandler(fh)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(ConsoleFormatter())
        ch.addFilter(flt)
        root.addHandler(ch)
    # uvicorn's own access log duplicates ours (ours carries the request id).
    logging.getLogger("uvicorn.access").disabled = True
    # One line per request the metadata proxy forwards is the access log's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
