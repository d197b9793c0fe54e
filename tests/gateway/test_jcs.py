"""RFC 8785 canonical JSON (gateway/jcs.py): the RFC's own examples, agreement with an
independent implementation (the `rfc8785` package) over generated values, and every
refusal with the path it names."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.jcs import MAX_DEPTH, MAX_SAFE_INTEGER, JcsError, canonicalize
from gateway.refusal import Refused

# RFC 8785 section 3.2.3, "Sorting of Object Properties": the input's members (written
# there as JSON escapes) and the order the RFC says they come out in. The emoji U+1F600 is
# the UTF-16 pair D83D DE00, so it sorts before U+FB33 by code unit (after it by code point).
RFC_SORTING_INPUT = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}
RFC_SORTING_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
)
# RFC 8785 section 3.2.4: the UTF-8 of that output, as the RFC prints it in hex.
RFC_SORTING_UTF8 = (
    "7b 22 5c 72 22 3a 22 43 61 72 72 69 61 67 65 20 52 65 74 75 72 6e 22 2c 22 31 22 3a "
    "22 4f 6e 65 22 2c 22 c2 80 22 3a 22 43 6f 6e 74 72 6f 6c 22 2c 22 c3 b6 22 3a 22 4c "
    "61 74 69 6e 20 53 6d 61 6c 6c 20 4c 65 74 74 65 72 20 4f 20 57 69 74 68 20 44 69 61 "
    "65 72 65 73 69 73 22 2c 22 e2 82 ac 22 3a 22 45 75 72 6f 20 53 69 67 6e 22 2c 22 f0 "
    "9f 98 80 22 3a 22 45 6d 6f 6a 69 3a 20 47 72 69 6e 6e 69 6e 67 20 46 61 63 65 22 2c "
    "22 ef ac b3 22 3a 22 48 65 62 72 65 77 20 4c 65 74 74 65 72 20 44 61 6c 65 74 20 57 "
    "69 74 68 20 44 61 67 65 73 68 22 7d"
)

# RFC 8785 section 3.2.2, the sample document. Its "numbers" are floats, which signed
# PharmaSync bodies never carry: the rest must come out as the RFC prints it, the numbers
# must be refused.
RFC_SAMPLE_TEXT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC_SAMPLE_WITHOUT_NUMBERS = (
    '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_rfc_8785_sorting_example() -> None:
    out = canonicalize(RFC_SORTING_INPUT)
    assert out == RFC_SORTING_OUTPUT.encode()
    assert out == bytes.fromhex(RFC_SORTING_UTF8)
    # What json.dumps(sort_keys=True) would do instead: code-point order puts the emoji last.
    plain = json.dumps(RFC_SORTING_INPUT, sort_keys=True, separators=(",", ":"))
    assert list(json.loads(plain))[-1] == "\U0001f600" != list(json.loads(out))[-1]


def test_rfc_8785_sample_document() -> None:
    sample = json.loads(RFC_SAMPLE_TEXT)
    numbers = sample.pop("numbers")
    assert canonicalize(sample) == RFC_SAMPLE_WITHOUT_NUMBERS.encode()
    assert canonicalize(sample) == rfc8785.dumps(sample)
    with pytest.raises(JcsError, match=r"^canonical json: \$\.numbers\[0\]: got the float"):
        canonicalize({"numbers": numbers})


def test_astral_before_private_use() -> None:
    # U+E000 (one unit E000) vs U+10000 (units D800 DC00): D800 < E000.
    assert canonicalize({"\ue000": 1, "\U00010000": 2}) == '{"\U00010000":2,"\ue000":1}'.encode()
    assert canonicalize({"\uffff": 1, "\U0010ffff": 2, "z": 3}) == (
        '{"z":3,"\U0010ffff":2,"\uffff":1}'.encode()
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("\b\t\n\f\r", r'"\b\t\n\f\r"'),
        ('"\\', r'"\"\\"'),
        ("\x00\x01\x0b\x1f", r'"\u0000\u0001\u000b\u001f"'),  # lowercase hex
        ("\x7f\u2028\u2029/", '"\x7f\u2028\u2029/"'),  # literal: not escaped by JCS
        ("é€\U0001f600", '"é€\U0001f600"'),  # literal UTF-8, never \u escapes
    ],
)
def test_string_escaping(text: str, want: str) -> None:
    assert canonicalize(text) == want.encode() == rfc8785.dumps(text)


def test_literals_integers_and_nesting() -> None:
    value = {"b": [{"z": 1, "a": -2}], "a": {"d": True, "c": None, "e": False}, "": []}
    want = b'{"":[],"a":{"c":null,"d":true,"e":false},"b":[{"a":-2,"z":1}]}'
    assert canonicalize(value) == want == rfc8785.dumps(value)
    assert canonicalize(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonicalize(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    assert canonicalize(0) == b"0"


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "path", "got"),
    [
        (1.5, "$", "the float 1.5"),
        (1.0, "$", "the float 1.0"),  # integral floats too: the type is what is signed
        ({"args": {"t": float("nan")}}, "$.args.t", "the float nan"),
        ([0, float("inf")], "$[1]", "the float inf"),
        (MAX_SAFE_INTEGER + 1, "$", "the integer 9007199254740992"),
        (-MAX_SAFE_INTEGER - 1, "$", "the integer -9007199254740992"),
        ({"a": [2**64]}, "$.a[0]", "the integer 18446744073709551616"),
        (10**400, "$", "the integer a 1329-bit one"),
        ({1: "x"}, "$", "a member name of type int"),
        ({("a",): "x"}, "$", "a member name of type tuple"),
        ("ok\ud800", "$", "a string with a lone surrogate \\ud800 at 2"),
        ({"k": ["\udfff"]}, "$.k[0]", "a string with a lone surrogate \\udfff at 0"),
        ({"\udc00": 1}, "$", "a member name with a lone surrogate \\udc00"),
        ({"\udc00": 1, "b": 2}, "$", "a member name with a lone surrogate \\udc00"),
        ((1, 2), "$", "a tuple"),
        (b"bytes", "$", "a bytes"),
        ({"x y": Color.RED}, "$['x y']", "a Color"),
    ],
)
def test_refusals_name_the_path(value: object, path: str, got: str) -> None:
    with pytest.raises(JcsError) as info:
        canonicalize(value)
    assert (info.value.path, info.value.got) == (path, got)
    assert isinstance(info.value, Refused) and info.value.status == 400
    assert info.value.detail.startswith(f"{path}: got {got}, want ")


def test_nesting_is_bounded() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert canonicalize(deep) == b"[" * MAX_DEPTH + b"0" + b"]" * MAX_DEPTH
    with pytest.raises(JcsError, match=f"nesting deeper than {MAX_DEPTH}"):
        canonicalize({"a": deep})
    with pytest.raises(JcsError, match=f"nesting deeper than {MAX_DEPTH}"):
        canonicalize([deep])


# Generated JSON values: text drawn from all of Unicode except lone surrogates, with the
# characters where implementations differ made frequent (controls, quote, backslash, DEL,
# U+2028, the private-use area next to astral characters, astral characters themselves).
_SPECIAL = '"\\/\x00\x08\x1f\x7f\x80\u2028\ue000\uffff\U00010000\U0001f600\U0010ffff'
texts = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(_SPECIAL), max_size=12
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.sampled_from([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
    | texts
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400)
@given(values)
def test_agrees_with_the_rfc8785_package(value: object) -> None:
    out = canonicalize(value)
    assert out == rfc8785.dumps(value)
    assert json.loads(out) == value
    assert canonicalize(json.loads(out)) == out  # a fixed point: canonical stays canonical


@given(st.dictionaries(texts, st.integers(0, 9), min_size=2, max_size=8))
def test_member_order_is_utf16_code_unit_order(obj: dict[str, int]) -> None:
    names = list(json.loads(canonicalize(obj)))
    units = [code_units(name) for name in names]
    assert units == sorted(units)


def code_units(text: str) -> list[int]:
    """Return the UTF-16 code units of `text`, written out from RFC 2781 section 2.1."""
    out: list[int] = []
    for char in text:
        c = ord(char)
        if c < 0x10000:
            out.append(c)
        else:
            c -= 0x10000
            out += [0xD800 | (c >> 10), 0xDC00 | (c & 0x3FF)]
    return out
