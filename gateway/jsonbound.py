"""Bounded JSON: the one reader of every JSON document the cloud and the auditor's tools
take from someone else (HTTP bodies, proof bundles, a ledger's answers, registry entries).

Python's json parser recurses once per nesting level, so 100,000 '[' raise RecursionError:
a 500 in a server, a traceback in a CLI. `loads` therefore checks, BEFORE parsing:

    size     at most `max_bytes` bytes of UTF-8 (the caller's limit; 413 over HTTP)
    UTF-8    the bytes decode strictly
    depth    arrays and objects nest at most `max_depth` deep, counted by one linear scan
             that skips strings (their brackets are text, not structure)

and while parsing, what RFC 8259 leaves to implementations and I-JSON (RFC 7493) forbids:

    numbers  integers of at most MAX_INT_DIGITS digits (range checks come later, per
             field: gateway/refusal.py int_field); no NaN, Infinity or overflowing floats
    names    no duplicate member names in an object
    strings  no lone surrogate escapes ("\\ud800"): every string encodes as UTF-8, so a
             database or a hash never refuses it later

Each refusal is a JsonError (a Refused, reason "json", 400; 413 for size) that says what
it got and what it wants.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from gateway.refusal import Refused

MAX_DEPTH: Final = 16  # PharmaSync's documents nest 3 deep at most
MAX_INT_DIGITS: Final = 40  # more than any range a field allows (2**64 has 20 digits)
REASON: Final = "json"

# A JSON string from its opening quote to its closing one, or to the end of the text if it
# has none (the parser then refuses it). The alternatives are disjoint, so the scan is
# linear: no backtracking, whatever the input.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_OPENERS = frozenset("[{")


class JsonError(Refused, ValueError):
    """A JSON document refused before or while parsing: `what` names the document, `got`
    and `want` say why; `detail` is "<what>: got <got>, want <want>"."""

    def __init__(self, what: str, got: str, want: str, status: int = 400) -> None:
        super().__init__(REASON, f"{what}: got {got}, want {want}", status)
        self.what, self.got, self.want = what, got, want


class _Refusal(Exception):
    """Raised by the parser's hooks, which do not know the document's name."""

    def __init__(self, got: str, want: str) -> None:
        super().__init__(got, want)
        self.got, self.want = got, want


def loads(
    data: bytes | bytearray | str,
    *,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    what: str = "JSON",
) -> Any:
    """Return the value of the JSON document `data` (UTF-8 bytes, or text). `what` names
    the document in refusals. Raises JsonError (module docstring): 413 if larger than
    `max_bytes` bytes, 400 for anything else that is not bounded, valid JSON."""
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass"))
        text = data
    else:
        size = len(data)
    if size > max_bytes:
        raise JsonError(what, f"{size} bytes", f"at most {max_bytes}", 413)
    if not isinstance(data, str):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JsonError(what, f"invalid UTF-8 at byte {e.start}", "UTF-8") from None
    # At most max_depth opening brackets in all cannot nest deeper: scan only past that.
    openers = text.count("[") + text.count("{")
    if openers > max_depth and nesting_depth(text, max_depth) > max_depth:
        raise JsonError(what, f"nesting deeper than {max_depth}", f"at most {max_depth} levels")
    try:
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except _Refusal as e:
        raise JsonError(what, e.got, e.want) from None
    except json.JSONDecodeError as e:
        raise JsonError(
            what, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})", "JSON text"
        ) from None
    # A lone surrogate comes from a "\\u" escape, or from a str given as such (strictly
    # decoded UTF-8 holds none): without either there is none to look for.
    if "\\u" in text or (isinstance(data, str) and not text.isascii()):
        _check_strings(value, what)
    return value


def nesting_depth(text: str, limit: int) -> int:
    """Return how deep arrays and objects nest in `text`, or limit + 1 as soon as it is
    deeper (the rest is not scanned). Brackets inside strings are skipped; the scan stops
    at a closing bracket that closes nothing, where the parser will stop too."""
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for b in brackets:
        if b in _OPENERS:
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
        else:
            depth -= 1
            if depth < 0:
                break
    return deepest


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refusal(f"an integer of {len(digits)} digits", f"at most {MAX_INT_DIGITS}")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refusal(f"the number {text[:40]}", "a finite one")
    return value


def _constant(name: str) -> float:
    raise _Refusal(name, "a number (NaN and Infinity are not JSON, RFC 8259 section 6)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise _Refusal(f"the member name {name[:40]!r} twice", "each name once")
        obj[name] = value
    return obj


def _check_strings(value: Any, what: str) -> None:
    """Raise JsonError if a string or member name in `value` holds a lone surrogate (RFC
    7493 section 2.1). Iterative: `value` nests at most max_depth deep anyway."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                raise JsonError(
                    what,
                    f"a lone surrogate \\u{ord(item[e.start]):04x} in a string",
                    "Unicode text",
                ) from None
