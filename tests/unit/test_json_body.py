"""The JSON body reader (api.common.loads_json): what it refuses, and that measuring the
nesting costs a loop, not a recursion, and stays linear on hostile strings."""

from __future__ import annotations

import time

import pytest

from onestack.api.common import MAX_JSON_DEPTH, json_depth, loads_json
from onestack.common.errors import BadRequest


@pytest.mark.parametrize("text, depth", [
    ("{}", 0),  # few brackets: not counted at all
    ("[" * 101 + "]" * 101, 101),
    ('["' + "[" * 500 + '"]', 1),
    ('["\\"' + "[" * 500 + '"]', 1),  # an escaped quote does not end the string
    ('{"a\\\\": ' + "[" * 150 + "]" * 150 + "}", 151),  # an escaped backslash does
    ('{"a":' * 1000, 1000),
])
def test_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


def test_depth_is_linear_on_unterminated_strings() -> None:
    started = time.perf_counter()
    for text in ('"' + '\\"' * 500_000, '"\\' * 300_000, "[" * (1 << 20)):
        json_depth(text)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("raw, words", [
    (b"[" * 50_000, "nested"),
    (b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "nested"),
    (b'{"n": 9223372036854775808}', "64-bit"),
    (b'{"n": -9223372036854775809}', "64-bit"),
    (b'{"n": ' + b"9" * 5000 + b"}", "64-bit"),
    (b'{"n": 1e999}', "out of range"),
    (b'{"n": NaN}', "NaN"),
    (b'{"n": -Infinity}', "Infinity"),
    (b'{"n": "a\\u0000b"}', "NUL"),
    (b"\xff\xfe{", "not valid JSON"),
])
def test_refused(raw: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as exc:
        loads_json(raw)
    assert words in exc.value.message


def test_accepted() -> None:
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    raw = f'{{"a": {nested}, "n": 9223372036854775807, "m": -9223372036854775808, ' \
          f'"f": 1.5e300, "s": "[[[[ {{{{"}}'
    body = loads_json(raw.encode())
    assert body["n"] == 2**63 - 1 and body["m"] == -(2**63) and body["s"] == "[[[[ {{"
    assert loads_json('{"é": 1}'.encode("utf-16")) == {"é": 1}
