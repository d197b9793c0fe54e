"""RFC 8785, the JSON Canonicalization Scheme (JCS): the one writer of canonical JSON for
everything PharmaSync signs as JSON (gateway events, contract transactions).

    canonicalize(value) -> bytes

`value` is made of dict (str keys), list, str, int, bool and None. The output is what RFC
8785 section 3.2 prescribes, for that subset of JSON:

    whitespace  none between tokens
    literals    null, true, false
    integers    decimal digits, "-" for negatives, no exponent (section 3.2.2.3: the ECMAScript
                Number-to-String of an integer that a double holds exactly)
    strings     UTF-8; escaped as ECMAScript's JSON.stringify does (section 3.2.2.2):
                \\b \\t \\n \\f \\r \\" \\\\, other U+0000-U+001F as \\u00xx (lowercase hex),
                everything else literal (DEL, U+2028, non-ASCII, astral characters)
    objects     members sorted by their names as arrays of UTF-16 code units (section 3.2.3),
                compared unit by unit, NOT by Python's code-point order: they differ when an
                astral character (a surrogate pair, 0xD800-0xDBFF first) meets a BMP character
                at U+E000 or above, e.g. U+1F600 sorts before U+FB33

and these are refused with a JcsError naming the value's path ("$.args.lines[2]"):

    floats      signed bodies carry integers only (temperatures in centi-degrees, amounts in
                the smallest unit); RFC 8785's float formatting is never needed
    integers    outside +-(2**53 - 1): a double cannot hold them exactly, so two parsers may
                read different numbers (RFC 7493 section 2.2); send larger amounts as strings
    strings     with a lone surrogate (U+D800-U+DFFF unpaired): not Unicode text, no UTF-8
                (RFC 8785 section 3.2.2.2 requires valid Unicode; I-JSON, RFC 7493 2.1)
    keys        that are not strings; any other type (tuple, bytes, float subclasses, ...)
    nesting     deeper than MAX_DEPTH arrays and objects (a bound, so no RecursionError)
"""

from __future__ import annotations

import re
from typing import Final

from gateway.refusal import Refused

MAX_SAFE_INTEGER: Final = 2**53 - 1  # ECMAScript Number.MAX_SAFE_INTEGER
MAX_DEPTH: Final = 64  # signed bodies nest 4 deep; jsonbound stops documents at 16
REASON: Final = "canonical json"

# RFC 8785 section 3.2.2.2: the two-character escapes of JSON.stringify, and \u00xx in
# lowercase hex for the other controls. Nothing else is escaped.
_ESCAPES: Final[dict[int, str]] = {c: f"\\u{c:04x}" for c in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}
_NEEDS_ESCAPE: Final = re.compile(r'[\x00-\x1f"\\]')


class JcsError(Refused, ValueError):
    """A value that has no canonical form here. `path` locates it ("$" is the whole value,
    "$.args.lines[2]" a member's element); `detail` is "<path>: got <got>, want <want>"."""

    def __init__(self, path: str, got: str, want: str) -> None:
        super().__init__(REASON, f"{path}: got {got}, want {want}")
        self.path, self.got, self.want = path, got, want


def canonicalize(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value` (module docstring). Requires
    dicts with str keys, lists, str, int within +-(2**53 - 1), bool and None, nested at most
    MAX_DEPTH deep. Raises JcsError naming the path of the first value that is not."""
    parts: list[str] = []
    try:
        _write(value, parts, 0)
    except _Unfit as e:
        raise JcsError("$" + "".join(reversed(e.steps)), e.got, e.want) from None
    # Every string was checked to encode as UTF-8 (_string), so this cannot raise.
    return "".join(parts).encode("utf-8")


class _Unfit(Exception):
    """A value with no canonical form, on its way up to canonicalize(): each array or object
    it passes adds its step to the path ("[2]", ".lines"), innermost first. The path is
    built only for a refusal: canonicalizing what fits pays nothing for it."""

    def __init__(self, got: str, want: str) -> None:
        super().__init__(got)
        self.got, self.want = got, want
        self.steps: list[str] = []


def utf16_key(name: str) -> bytes:
    """Return the sort key RFC 8785 section 3.2.3 orders member names by: the name's UTF-16
    code units, big-endian, so that bytewise order is code-unit order. Requires a str
    without lone surrogates (UnicodeEncodeError otherwise)."""
    return name.encode("utf-16-be")


def _write(value: object, parts: list[str], depth: int) -> None:
    # Exact type checks: bool is an int subclass, and an int or str subclass (an IntEnum,
    # a StrEnum) may print differently from its value.
    if type(value) is str:
        parts.append(_string(value))
    elif type(value) is bool:
        parts.append("true" if value else "false")
    elif type(value) is int:
        parts.append(_integer(value))
    elif value is None:
        parts.append("null")
    elif type(value) is dict:
        _object(value, parts, depth + 1)
    elif type(value) is list:
        _check_depth(depth + 1)
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            try:
                _write(item, parts, depth + 1)
            except _Unfit as e:
                e.steps.append(f"[{i}]")
                raise
        parts.append("]")
    elif type(value) is float:
        raise _Unfit(f"the float {value!r}", "an integer (signed bodies carry no floats)")
    else:
        raise _Unfit(f"a {type(value).__name__}", "dict, list, str, int, bool or None")


def _object(obj: dict[object, object], parts: list[str], depth: int) -> None:
    _check_depth(depth)
    for name in obj:
        if type(name) is not str:
            raise _Unfit(f"a member name of type {type(name).__name__}", "a str")
    names = [name for name in obj if isinstance(name, str)]  # all of them, checked above
    if all(name.isascii() for name in names):
        names.sort()  # fast path: an ASCII character is one UTF-16 unit of the same value
    else:
        names.sort(key=_sort_key)
    parts.append("{")
    for i, name in enumerate(names):
        if i:
            parts.append(",")
        parts.append(_string(name))
        parts.append(":")
        try:
            _write(obj[name], parts, depth)
        except _Unfit as e:
            e.steps.append(_member_step(name))
            raise
    parts.append("}")


def _sort_key(name: str) -> bytes:
    try:
        return utf16_key(name)
    except UnicodeEncodeError as e:
        raise _Unfit(
            f"a member name with a lone surrogate \\u{ord(name[e.start]):04x}",
            "Unicode text (RFC 8785 section 3.2.2.2)",
        ) from None


def _string(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _Unfit(
                f"a string with a lone surrogate \\u{ord(text[e.start]):04x} at {e.start}",
                "Unicode text (RFC 8785 section 3.2.2.2)",
            ) from None
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'  # the common case; a search is ten times cheaper than translate
    return '"' + text.translate(_ESCAPES) + '"'


def _integer(number: int) -> str:
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        # (str() of an integer of over 4,300 digits raises ValueError: show its size)
        shown = str(number) if number.bit_length() <= 256 else f"a {number.bit_length()}-bit one"
        raise _Unfit(
            f"the integer {shown}",
            f"one within +-{MAX_SAFE_INTEGER} (2**53 - 1; send larger amounts as strings)",
        )
    return str(number)


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Unfit(f"nesting deeper than {MAX_DEPTH}", f"at most {MAX_DEPTH} levels")


def _member_step(name: str) -> str:
    # Plain names as ".name"; anything else quoted, cut to keep a refusal's detail short.
    if name.isidentifier() and name.isascii():
        return f".{name}"
    return f"[{name[:40]!r}]"
