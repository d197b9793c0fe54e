"""EPC pure identity URNs of GS1 keys (GS1 EPC Tag Data Standard 2.x §6.3, and §6.4 for the
LGTIN class), the other identifier syntax EPCIS 2.0 allows beside GS1 Digital Link URIs.
Encode and decode; no storage.

    urn:epc:id:sgtin:{company prefix}.{indicator digit}{item reference}.{serial}   a pack
    urn:epc:class:lgtin:{company prefix}.{indicator digit}{item reference}.{lot}   a lot
    urn:epc:id:sscc:{company prefix}.{extension digit}{serial reference}           a unit

The company prefix (GCP, 6 to 12 digits) and the part after it add up to the GS1 key without
its check digit (13 digits for a GTIN, 17 for an SSCC); the indicator or extension digit,
first in the key, moves to the front of the second part. Where the company prefix ends is
not in the key: a URN can only be written knowing the GCP's length, and only read back as
the same key if the split it names is the GCP's. Serials and lots are AI 21 and AI 10 values
(character set 82); in a URN the characters " % & / < > ? are percent-encoded (TDS §6.3,
"escaping"), and only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cloud.contracts import gs1

SGTIN: Final = "urn:epc:id:sgtin:"
LGTIN: Final = "urn:epc:class:lgtin:"
SSCC: Final = "urn:epc:id:sscc:"
PREFIX_MIN: Final = 6  # GCP lengths the TDS partition tables encode
PREFIX_MAX: Final = 12
_GTIN_DIGITS: Final = 13  # a GTIN-14 without its check digit
_SSCC_DIGITS: Final = 17
_ESCAPED: Final = {
    '"': "%22", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"
}  # fmt: skip
_UNESCAPED: Final = {v: k for k, v in _ESCAPED.items()}

Kind = Literal["sgtin", "lgtin", "sscc"]


_SCHEMES: Final[tuple[tuple[Kind, str, int], ...]] = (
    ("sgtin", SGTIN, _GTIN_DIGITS),
    ("lgtin", LGTIN, _GTIN_DIGITS),
    ("sscc", SSCC, _SSCC_DIGITS),
)


class UrnError(ValueError):
    """Not an SGTIN, LGTIN or SSCC EPC URN; str() says got/want."""


@dataclass(frozen=True)
class Urn:
    """What an EPC URN names: its kind, the company prefix it splits at, the GS1 key (a
    GTIN-14 or an SSCC, with its check digit) and the serial or lot (None for an SSCC)."""

    kind: Kind
    prefix: str
    key: str
    value: str | None


def _escape(value: str) -> str:
    return "".join(_ESCAPED.get(c, c) for c in value)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        code = text[i : i + 3].upper()
        if text[i] == "%" and code in _UNESCAPED:
            out.append(_UNESCAPED[code])
            i += 3
        elif text[i] == "%":
            raise UrnError(f"got {text[i : i + 3]!r}: want %22, %25, %26, %2F, %3C, %3E or %3F")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _split(key: str, prefix_length: int) -> tuple[str, str]:
    """The company prefix and the rest (first digit moved to its front) of a key's digits
    without the check digit. Requires PREFIX_MIN <= prefix_length <= PREFIX_MAX."""
    if not PREFIX_MIN <= prefix_length <= PREFIX_MAX:
        raise UrnError(f"prefix length: got {prefix_length}, want {PREFIX_MIN}..{PREFIX_MAX}")
    body = key[:-1]
    return body[1 : 1 + prefix_length], body[0] + body[1 + prefix_length :]


def sgtin(gtin: str, prefix_length: int, serial: str) -> str:
    """The SGTIN URN of pack `serial` of GTIN-14 `gtin` whose GCP has `prefix_length`
    digits. Raises UrnError for a length out of range."""
    prefix, rest = _split(gtin, prefix_length)
    return f"{SGTIN}{prefix}.{rest}.{_escape(serial)}"


def lgtin(gtin: str, prefix_length: int, lot: str) -> str:
    """The LGTIN class URN of lot `lot` of GTIN-14 `gtin` (as sgtin)."""
    prefix, rest = _split(gtin, prefix_length)
    return f"{LGTIN}{prefix}.{rest}.{_escape(lot)}"


def sscc(code: str, prefix_length: int) -> str:
    """The SSCC URN of an 18-digit SSCC whose GCP has `prefix_length` digits."""
    prefix, rest = _split(code, prefix_length)
    return f"{SSCC}{prefix}.{rest}"


def parse(urn: str) -> Urn:
    """Read an SGTIN, LGTIN or SSCC URN. Raises UrnError naming what is wrong: another
    scheme, the digits (count, a GCP length out of range), the serial or lot."""
    found = [(k, h, d) for k, h, d in _SCHEMES if urn.startswith(h)]
    if not found:
        raise UrnError(f"got {urn[:60]!r}, want {SGTIN}…, {LGTIN}… or {SSCC}…")
    kind, head, digits = found[0]
    parts = urn[len(head) :].split(".", 2)
    want = 2 if kind == "sscc" else 3
    if len(parts) != want:
        raise UrnError(f"got {urn[:60]!r}, want {want} parts separated by '.'")
    prefix, rest = parts[0], parts[1]
    if not (prefix + rest).isascii() or not (prefix + rest).isdigit():
        raise UrnError(f"got {urn[:60]!r}: the company prefix and the rest must be digits")
    if not PREFIX_MIN <= len(prefix) <= PREFIX_MAX:
        raise UrnError(f"got {urn[:60]!r}: company prefix of {len(prefix)} digits, want 6..12")
    if len(prefix) + len(rest) != digits:
        raise UrnError(f"got {urn[:60]!r}: {len(prefix) + len(rest)} digits, want {digits}")
    body = rest[0] + prefix + rest[1:]
    key = body + str(gs1.check_digit(body))
    if kind == "sscc":
        return Urn(kind, prefix, key, None)
    try:
        value = _unescape(parts[2])
        checked = gs1.serial(value) if kind == "sgtin" else gs1.lot(value)
    except ValueError as e:
        raise UrnError(f"got {urn[:60]!r}: {e}") from None
    return Urn(kind, prefix, key, checked)
