"""gateway.jsonbound: every limit is checked before or while parsing, each refusal says got
and want, and on anything else it agrees with the standard json module."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.jsonbound import MAX_DEPTH, MAX_INT_DIGITS, JsonError, loads, nesting_depth

BIG = 1 << 20


def refusal(data: bytes | str, **limits: int) -> JsonError:
    with pytest.raises(JsonError) as e:
        loads(data, **{"max_bytes": BIG, **limits}, what="doc")
    assert e.value.reason == "json" and e.value.detail.startswith("doc: got ")
    return e.value


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_100000_levels_are_refused_before_parsing_not_by_recursion(opener: str) -> None:
    deep = opener * 100_000
    e = refusal(deep)
    assert (e.status, e.got, e.want) == (
        400,
        f"nesting deeper than {MAX_DEPTH}",
        "at most 16 levels",
    )
    started = time.perf_counter()
    refusal(deep.encode())
    assert time.perf_counter() - started < 0.5  # the scan stops at the limit


def test_the_depth_limit_is_exact() -> None:
    nested: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, max_bytes=BIG) == nested
    refusal("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    refusal("[" * 3 + "]" * 3, max_depth=2)
    assert loads("[[1]]", max_bytes=BIG, max_depth=2) == [[1]]


def test_brackets_in_strings_and_escaped_quotes_are_text() -> None:
    doc = json.dumps({"a": "[[[[{{{{" * 100, "b": ['\\"[[[', '"]]]'], "c": "\\"})
    assert loads(doc, max_bytes=BIG, max_depth=2) == json.loads(doc)
    assert nesting_depth('["\\"[[[["]', 10) == 1


def test_size_is_checked_first_with_413() -> None:
    e = refusal(b"[" + b" " * 100 + b"]", max_bytes=50)
    assert (e.status, e.got, e.want) == (413, "102 bytes", "at most 50")
    e = refusal("é" * 30, max_bytes=50)  # bytes of UTF-8, not characters
    assert e.got == "60 bytes"


@pytest.mark.parametrize(
    ("data", "got"),
    [
        (b'{"a": 1, "a": 2}', "the member name 'a' twice"),
        (b'"\\ud800"', "a lone surrogate \\ud800 in a string"),
        (b'{"\\udc00x": 1}', "a lone surrogate \\udc00 in a string"),
        (b"[NaN]", "NaN"),
        (b"-Infinity", "-Infinity"),
        (b"1e400", "the number 1e400"),
        (b"1" + b"0" * MAX_INT_DIGITS, f"an integer of {MAX_INT_DIGITS + 1} digits"),
        (b"-" + b"9" * 5000, "an integer of 5001 digits"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte 7"),
        (
            b"{not json",
            "invalid JSON (Expecting property name enclosed in double quotes at line 1 column 2)",
        ),
        (b"", "invalid JSON (Expecting value at line 1 column 1)"),
        (b"]]]][[[[", "invalid JSON (Expecting value at line 1 column 1)"),
    ],
)
def test_what_json_allows_but_i_json_does_not_is_refused(data: bytes, got: str) -> None:
    assert refusal(data).got == got


def test_paired_surrogates_and_long_but_bounded_integers_pass() -> None:
    assert loads(b'"\\ud83d\\ude00"', max_bytes=BIG) == "\U0001f600"
    assert loads(b"9" * MAX_INT_DIGITS, max_bytes=BIG) == int("9" * MAX_INT_DIGITS)
    assert loads(b"[1.5, -0.25e2]", max_bytes=BIG) == [1.5, -25.0]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_bounded_documents_read_as_the_json_module_reads_them(value: object) -> None:
    text = json.dumps(value)
    depth = nesting_depth(text, 1000)
    if depth <= MAX_DEPTH and all(len(str(abs(n))) <= MAX_INT_DIGITS for n in _ints(value)):
        assert loads(text, max_bytes=BIG) == json.loads(text)
        assert loads(text.encode(), max_bytes=BIG) == json.loads(text)


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [n for v in value for n in _ints(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _ints(v)]
    return []


@given(st.binary(max_size=300) | st.text(alphabet='[]{}"\\,:0123456789 ', max_size=300))
@settings(max_examples=500, deadline=None)
def test_any_input_is_a_value_or_a_json_error_never_another_exception(data: bytes | str) -> None:
    try:
        loads(data, max_bytes=200, max_depth=4)
    except JsonError as e:
        assert e.status in (400, 413) and e.got and e.want
