"""GS1 Digital Link URIs for a GTIN: parsed and built, and one entry point for any scan.

The path grammar (GS1 Digital Link Standard: URI Syntax 1.2, §4 and its ABNF `gtin-path`):
`/01/{gtin}` followed, in this order and each at most once, by `/22/{cpv}`, `/10/{lot}`,
`/21/{serial}`; before it any host (`https://id.gs1.org`, a brand's own) and any path prefix
of that host's (`/products/01/...`), or nothing (a bare path, as a resolver's router sees it).
Data attributes ride in the query (`?17=270300`); `linkType` (the resolver's link selector)
is kept apart, and any other non-numeric parameter is kept as given, not interpreted.

The path is read from its right end, as the standard's decoding does, so a prefix of the
host's own may hold anything. Values are percent-decoded strictly (a `%` not followed by two
hex digits, or a decoded byte outside ASCII, is refused) and then checked as the element
string parser checks the same AI (cloud/contracts/gs1_element.py, on gs1.py's rules): a
GTIN-8/12/13 becomes 14 digits, a wrong check digit is refused, lot and serial are 1..20
characters of set 82.

Short names: Digital Link 1.1 defined "convenience alphas" (`gtin`, `cpv`, `lot`, `ser` for
the path keys); release 1.2 deprecated them ("Deprecating alpha alternatives" in its log of
changes), while the 1.2 ABNF grammar shipped with digital-link.js (the library behind GS1's
Digital Link tools) still lists them beside the numeric codes. They are accepted here in the
path and never written. That grammar has no alpha for a data attribute (such as `exp`), so
`?exp=` is an ordinary, uninterpreted parameter.

Pure: no clock, no I/O. Refusals are gs1.Gs1Error (an AI's value) or DigitalLinkError (its
subclass, naming the part of the URI: "uri", "host", "path", "query", "linkType").
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from cloud.contracts import gs1, gs1_element
from cloud.contracts.gs1 import Gs1Date, Gs1Error
from cloud.contracts.gs1_element import Scan

AI_CPV: Final = "22"
# The key qualifiers of a GTIN, in the one order the path may carry them.
QUALIFIERS: Final = (AI_CPV, gs1.AI_BATCH_LOT, gs1.AI_SERIAL)
# Path codes: numeric AIs and the deprecated Digital Link 1.1 alphas, to the AI they name.
PATH_CODES: Final = {
    gs1.AI_GTIN: gs1.AI_GTIN,
    "gtin": gs1.AI_GTIN,
    AI_CPV: AI_CPV,
    "cpv": AI_CPV,
    gs1.AI_BATCH_LOT: gs1.AI_BATCH_LOT,
    "lot": gs1.AI_BATCH_LOT,
    gs1.AI_SERIAL: gs1.AI_SERIAL,
    "ser": gs1.AI_SERIAL,
}
# Primary keys of other GS1 key types: never a GTIN's data attribute.
_NOT_ATTRIBUTES: Final = frozenset(("00", "414", "417"))
LINK_TYPE: Final = "linkType"
GS1_RESOLVER: Final = "https://id.gs1.org"  # GS1's own resolver, the canonical host
MAX_URI: Final = 2048  # characters: a QR code of the largest practical size holds ~2,900
MAX_LINK_TYPE: Final = 256
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PREFIX = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")  # RFC 3986 pchar


class DigitalLinkError(Gs1Error):
    """A Digital Link URI is malformed; `ai` names the part: uri, host, path, query, ..."""

    def __init__(self, part: str, got: object, want: str) -> None:
        ValueError.__init__(self, f"{part}: got {got!r}, want {want}")
        self.ai = part


@dataclass(frozen=True)
class DigitalLink:
    """One parsed GS1 Digital Link URI for a GTIN.

    `base` is what came before `/01/` (scheme, host and the host's own path prefix; "" for a
    bare path), `gtin` 14 digits, `cpv`/`lot`/`serial` the key qualifiers present,
    `attributes` the query's data attributes as checked (ai, value) pairs in the order given
    (`expiry` is AI 17's reading), `link_type` the linkType parameter, `extra` every other
    non-GS1 query parameter, decoded, in order.
    """

    gtin: str
    cpv: str | None = None
    lot: str | None = None
    serial: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    expiry: Gs1Date | None = None
    link_type: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    base: str = ""

    def scan(self) -> Scan:
        """The same identifiers as a Scan (the element-string parser's result): cpv and the
        data attributes other than AI 17 go to `other`."""
        other = [(AI_CPV, self.cpv)] if self.cpv is not None else []
        other += [(ai, v) for ai, v in self.attributes if ai != gs1.AI_EXPIRY]
        return Scan(self.gtin, self.lot, self.expiry, self.serial, tuple(other))

    def uri(self, base: str | None = None) -> str:
        """This link written canonically (numeric codes, percent-encoded values, AI 17 first
        then the other attributes, linkType last; extras dropped) on `base` (default its
        own; "" for a bare path)."""
        return _write(
            self.base if base is None else base,
            [
                (gs1.AI_GTIN, self.gtin),
                (AI_CPV, self.cpv),
                (gs1.AI_BATCH_LOT, self.lot),
                (gs1.AI_SERIAL, self.serial),
            ],
            _attribute_order(self.attributes),
            self.link_type,
        )


def _attribute_order(attributes: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    expiry = [(ai, v) for ai, v in attributes if ai == gs1.AI_EXPIRY]
    return expiry + [(ai, v) for ai, v in attributes if ai != gs1.AI_EXPIRY]


def _decode(part: str, raw: str) -> str:
    """Percent-decode `raw` strictly: every `%` starts a %XX escape, the result is ASCII."""
    if "%" not in raw:
        return raw
    if _BAD_PERCENT.search(raw):
        raise DigitalLinkError(part, raw, "'%' only as a %XX escape (two hex digits)")
    try:
        return unquote_to_bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise DigitalLinkError(part, raw, "escapes of ASCII characters only") from None


def _split_base(uri: str) -> tuple[str, str, str]:
    """Return (base up to the path, path, query) of an http(s) URI or a bare path."""
    uri = uri.split("#", 1)[0]  # a fragment never reaches a resolver
    path, _, query = uri.partition("?")
    head = path[:8].lower()
    if head.startswith(("https://", "http://")):
        scheme_end = path.index("//") + 2
        slash = path.find("/", scheme_end)
        host = path[scheme_end:] if slash < 0 else path[scheme_end:slash]
        if not _HOST.fullmatch(host):
            raise DigitalLinkError("host", host, "a host name or address, with an optional port")
        if slash < 0:
            raise DigitalLinkError("path", "", "/01/{gtin} after the host")
        return path[:slash].lower(), path[slash:], query  # scheme and host: any case
    if path.startswith("//"):  # a network-path reference: another host, unnamed
        raise DigitalLinkError("uri", uri[:80], "a path starting with a single /")
    if path.startswith("/"):
        return "", path, query
    raise DigitalLinkError("uri", uri[:80], "an http(s) URI or a path starting with /")


def _parse_path(path: str, today: datetime.date) -> tuple[str, dict[str, str], str]:
    """Return (gtin, qualifiers by AI, the host's own path prefix) of a Digital Link path,
    read from its right end."""
    segments = path.split("/")[1:]
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()  # one trailing slash
    found: list[tuple[str, str]] = []
    i = len(segments)
    while True:
        if i < 2:
            raise DigitalLinkError(
                "path", path[:120], "/01/{gtin} then optionally /22/{cpv}, /10/{lot}, /21/{serial}"
            )
        code, raw = segments[i - 2], segments[i - 1]
        ai = PATH_CODES.get(code)
        if ai is None:
            want = "a key qualifier of a GTIN (22, 10 or 21) or /01/{gtin} here"
            raise DigitalLinkError("path", f"/{code}/{raw}", want)
        value = gs1_element.check_value(ai, _decode("path", raw), today)
        i -= 2
        if ai == gs1.AI_GTIN:
            break
        found.append((ai, value))
    found.reverse()
    order = [ai for ai, _ in found]
    if len(set(order)) != len(order):
        twice = next(ai for ai in order if order.count(ai) > 1)
        raise DigitalLinkError("path", "/".join(segments[i:]), f"AI {twice} once, not repeated")
    if order != [ai for ai in QUALIFIERS if ai in order]:
        raise DigitalLinkError(
            "path", "/".join(segments[i:]), "key qualifiers in the order 22, 10, 21"
        )
    prefix = "/".join(segments[:i])
    if not _PREFIX.fullmatch(prefix):
        raise DigitalLinkError("path", prefix[:80], "a path prefix of URI characters (RFC 3986)")
    return value, dict(found), ("/" + prefix if prefix else "")


def _parse_query(
    query: str, today: datetime.date
) -> tuple[list[tuple[str, str]], str | None, list[tuple[str, str]]]:
    """Return (data attributes, linkType, other parameters) of a Digital Link query."""
    attributes: list[tuple[str, str]] = []
    link_type: str | None = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in query.split("&") if query else ():
        if not part:
            continue
        raw_key, eq, raw_value = part.partition("=")
        key = _decode("query", raw_key)
        value = _decode("query", raw_value)
        if not key or not eq:
            raise DigitalLinkError("query", part[:80], "key=value parameters")
        if key in seen and (key.isdigit() or key == LINK_TYPE):
            raise DigitalLinkError("query", part[:80], f"{key} once, not repeated")
        seen.add(key)
        if key == LINK_TYPE:
            if not 1 <= len(value) <= MAX_LINK_TYPE or not value.isprintable():
                raise DigitalLinkError(LINK_TYPE, value[:80], "1..256 printable characters")
            link_type = value
        elif key.isascii() and key.isdigit():
            if key in PATH_CODES:
                raise DigitalLinkError(
                    "query", part[:80], f"AI {key} in the path (/{key}/...), not the query"
                )
            if key in _NOT_ATTRIBUTES:
                raise Gs1Error(key, value, "a data attribute of a GTIN (this is a primary key)")
            attributes.append((key, gs1_element.check_value(key, value, today)))
        else:
            extra.append((key, value))
    return attributes, link_type, extra


def parse_digital_link(uri: str, today: datetime.date) -> DigitalLink:
    """Parse a GS1 Digital Link URI for a GTIN (any host, or a bare path; six-digit dates
    read on `today`). Raises Gs1Error (DigitalLinkError for the URI's structure), never
    anything else, whatever `uri` holds."""
    if not isinstance(uri, str):
        raise DigitalLinkError("uri", type(uri).__name__, "a URI (str)")
    if len(uri) > MAX_URI:
        raise DigitalLinkError("uri", f"{len(uri)} characters", f"at most {MAX_URI}")
    base, path, query = _split_base(uri)
    gtin, qualifiers, prefix = _parse_path(path, today)
    attributes, link_type, extra = _parse_query(query, today)
    expiry = dict(attributes).get(gs1.AI_EXPIRY)
    return DigitalLink(
        gtin=gtin,
        cpv=qualifiers.get(AI_CPV),
        lot=qualifiers.get(gs1.AI_BATCH_LOT),
        serial=qualifiers.get(gs1.AI_SERIAL),
        attributes=tuple(attributes),
        expiry=None if expiry is None else gs1_element.read_date(gs1.AI_EXPIRY, expiry, today),
        link_type=link_type,
        extra=tuple(extra),
        base=base + prefix,
    )


# -- building ------------------------------------------------------------------------------


def _check_base(base: str) -> str:
    """Return `base` without a trailing slash if it is "" or an http(s) URI without query or
    fragment; raises DigitalLinkError."""
    base = base.rstrip("/")
    if base == "":
        return base
    if "?" in base or "#" in base:
        raise DigitalLinkError("uri", base, "a base URI without query or fragment")
    _, path, _ = _split_base(base + "/")  # raises for what is neither an http(s) URI nor a path
    if not _PREFIX.fullmatch(path):
        raise DigitalLinkError("uri", base, "a path prefix of URI characters (RFC 3986)")
    return base


def _write(
    base: str,
    path: list[tuple[str, str | None]],
    attributes: list[tuple[str, str]],
    link_type: str | None,
) -> str:
    text = _check_base(base) + "".join(
        f"/{ai}/{quote(value, safe='')}" for ai, value in path if value is not None
    )
    query = [f"{ai}={quote(value, safe='')}" for ai, value in attributes]
    if link_type is not None:
        query.append(f"{LINK_TYPE}={quote(link_type, safe=':')}")
    return text + ("?" + "&".join(query) if query else "")


def build_digital_link(
    gtin: str,
    today: datetime.date,
    *,
    lot: str | None = None,
    serial: str | None = None,
    cpv: str | None = None,
    expiry: str | None = None,
    base: str = GS1_RESOLVER,
    link_type: str | None = None,
) -> str:
    """Return the canonical Digital Link URI of a GTIN (and its cpv, lot, serial: in that
    order in the path) on `base` ("" for a bare path), with `?17=` when `expiry` (YYMMDD) is
    given. Every value is checked as a parser checks it (GTIN-8/12/13 written as 14 digits);
    raises Gs1Error. The result parses back to the same values (parse_digital_link)."""
    link = DigitalLink(
        gtin=gs1_element.check_value(gs1.AI_GTIN, gtin, today),
        cpv=None if cpv is None else gs1_element.check_value(AI_CPV, cpv, today),
        lot=None if lot is None else gs1.lot(lot),
        serial=None if serial is None else gs1.serial(serial),
        attributes=() if expiry is None else ((gs1.AI_EXPIRY, gs1.expiry(expiry, today).yymmdd),),
        link_type=link_type,
    )
    if link_type is not None and not (
        1 <= len(link_type) <= MAX_LINK_TYPE and link_type.isprintable()
    ):
        raise DigitalLinkError(LINK_TYPE, link_type[:80], "1..256 printable characters")
    return link.uri(base)


def lot_uri(gtin: str, lot: str, today: datetime.date, base: str = GS1_RESOLVER) -> str:
    """The Digital Link of a lot: `{base}/01/{gtin}/10/{lot}`. Raises Gs1Error."""
    return build_digital_link(gtin, today, lot=lot, base=base)


def pack_uri(
    gtin: str,
    lot: str,
    serial: str,
    today: datetime.date,
    expiry: str | None = None,
    base: str = GS1_RESOLVER,
) -> str:
    """The Digital Link of a pack: `{base}/01/{gtin}/10/{lot}/21/{serial}`, `?17={expiry}`
    when known. Raises Gs1Error."""
    return build_digital_link(gtin, today, lot=lot, serial=serial, expiry=expiry, base=base)


# -- any scan ------------------------------------------------------------------------------

# Symbology identifiers a scanner may put before a URI: QR Code and DataMatrix, not GS1 mode.
_URI_SYMBOLOGIES: Final = ("]Q1", "]d1")


def is_digital_link(text: str) -> bool:
    """True if `text` (less a ]Q1/]d1 symbology identifier) looks like a URI or a path
    rather than an element string: it starts with http://, https:// or /."""
    if text[:3] in _URI_SYMBOLOGIES:
        text = text[3:]
    return text[:1] == "/" or text[:8].lower().startswith(("http://", "https://"))


def scan_from_any(text: str, today: datetime.date) -> Scan:
    """Parse what a counter's scanner read, whichever form: a GS1 Digital Link URI (or bare
    path) or a GS1 element string (raw with GS separators, or in parentheses). Raises
    Gs1Error, never anything else."""
    if not isinstance(text, str):
        raise DigitalLinkError("uri", type(text).__name__, "a scan (str)")
    if is_digital_link(text):
        if text[:3] in _URI_SYMBOLOGIES:
            text = text[3:]
        return parse_digital_link(text, today).scan()
    return gs1_element.parse_element_string(text, today)
