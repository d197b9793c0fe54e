"""The path of a GS1 Digital Link URI as this ledger's resolver reads it, minimally.

    /01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}][?17=YYMMDD&linkType=...]

(GS1 Digital Link URI Syntax 1.4: the GTIN is the primary key; consumer product variant (AI
22), batch/lot (AI 10) and serial (AI 21) are its key qualifiers, in that order; data
attributes such as the expiry date (AI 17) travel in the query string.) Each value is
percent-decoded once and checked with cloud/contracts/gs1.py (GTIN-8/12/13 are padded to 14
digits, a wrong check digit is refused). Only what the resolver answers is read: AI 17 of the
data attributes and `linkType`; other query parameters are left alone, as a resolver does.

One function, `parse`, so that a full Digital Link parser (element strings, compressed URIs,
every AI) can replace it. Pure; raises gs1.Gs1Error naming the AI (or "path" for the shape).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cloud.contracts import gs1

AI_CPV: Final = "22"  # consumer product variant, X..20 of set 82
CPV_MAX: Final = 20
# The key qualifiers of a GTIN in the order a Digital Link path must carry them.
QUALIFIERS: Final = (AI_CPV, gs1.AI_BATCH_LOT, gs1.AI_SERIAL)
PATH: Final = "path"  # the Gs1Error `ai` of a malformed path (not one AI's value)
LINK_TYPE: Final = "linkType"
MAX_PATH: Final = 256  # a Digital Link path is at most 3 * (2 + 20) + 20 characters, encoded


@dataclass(frozen=True)
class DigitalLinkPath:
    """What a Digital Link path and its query name: the GTIN-14, its qualifiers (None when
    absent) and the pack's expiry (AI 17) when given."""

    gtin: str
    cpv: str | None = None
    lot: str | None = None
    serial: str | None = None
    expiry: gs1.Gs1Date | None = None
    link_type: str | None = None

    def path(self) -> str:
        """Return the canonical path (GTIN-14, qualifiers in order, percent-encoded)."""
        parts = ["", gs1.AI_GTIN, self.gtin]
        for ai, value in zip(QUALIFIERS, (self.cpv, self.lot, self.serial), strict=True):
            if value is not None:
                parts += [ai, quote(value, safe="")]
        return "/".join(parts)


def parse(path: str, query: Mapping[str, str], today: datetime.date) -> DigitalLinkPath:
    """Read a resolver request's raw (percent-encoded) `path` and its decoded `query`;
    `today` places AI 17's century. Raises gs1.Gs1Error: `ai` "path" for a path that is not
    /01/{gtin} with qualifiers in order, the AI's own code for a bad value."""
    if len(path) > MAX_PATH:
        raise gs1.Gs1Error(PATH, path[:32] + "…", f"at most {MAX_PATH} characters")
    segments = path.split("/")
    if segments[0] != "" or len(segments) % 2 != 1 or len(segments) < 3:
        raise gs1.Gs1Error(PATH, path, "/01/{gtin} followed by /AI/value pairs")
    try:
        pairs = list(
            zip(segments[1::2], [unquote(v, errors="strict") for v in segments[2::2]], strict=True)
        )
    except UnicodeDecodeError:
        raise gs1.Gs1Error(PATH, path, "percent-encoded UTF-8") from None
    ai, value = pairs[0]
    if ai != gs1.AI_GTIN:
        raise gs1.Gs1Error(PATH, ai, "primary key AI 01 (GTIN) first")
    found: dict[str, str] = {gs1.AI_GTIN: gs1.gtin14(value)}
    allowed = list(QUALIFIERS)
    for ai, value in pairs[1:]:
        if ai not in allowed:
            if ai not in QUALIFIERS:
                raise gs1.Gs1Error(PATH, ai, "a key qualifier this resolver reads: 22, 10, 21")
            raise gs1.Gs1Error(PATH, ai, "qualifiers 22, 10, 21 in that order, each once")
        del allowed[: allowed.index(ai) + 1]  # only later qualifiers may follow
        found[ai] = _qualifier(ai, value)
    expiry = None
    if gs1.AI_EXPIRY in query:
        expiry = gs1.expiry(query[gs1.AI_EXPIRY], today)
    link_type = query.get(LINK_TYPE)
    return DigitalLinkPath(
        gtin=found[gs1.AI_GTIN],
        cpv=found.get(AI_CPV),
        lot=found.get(gs1.AI_BATCH_LOT),
        serial=found.get(gs1.AI_SERIAL),
        expiry=expiry,
        link_type=link_type,
    )


def parse_uri(uri: str, today: datetime.date) -> DigitalLinkPath:
    """Read a whole Digital Link URI (as a scanner reads the pack's QR code): any scheme and
    host, and any path prefix before /01/ (a resolver may sit under one). Raises
    gs1.Gs1Error as parse does."""
    parts = urlsplit(uri)
    at = ("/" + parts.path.lstrip("/")).find("/01/")
    if at < 0:
        raise gs1.Gs1Error(PATH, uri, "a URI whose path holds /01/{gtin}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parse(("/" + parts.path.lstrip("/"))[at:], query, today)


def _qualifier(ai: str, value: str) -> str:
    if ai == AI_CPV:
        return gs1.cset82(AI_CPV, value, CPV_MAX)
    return gs1.lot(value) if ai == gs1.AI_BATCH_LOT else gs1.serial(value)
