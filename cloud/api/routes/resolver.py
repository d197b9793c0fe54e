"""The GS1 Digital Link resolver at the host's root: `/01/{gtin}[/22/{cpv}][/10/{lot}]
[/21/{serial}]`, with `?17=YYMMDD` and `?linkType=` (cloud/contracts/digital_link.py, the
one Digital Link parser, reads the path; cloud/services/public_check.py answers;
docs/protocol.md, "Public check proof").

What is answered, by `linkType` first, then by content negotiation (Accept, RFC 9110 §12.5.1):

    ?linkType=all (or =linkset)        the linkset, application/linkset+json (RFC 9264)
    ?linkType=gs1:pip (any we have)    307 to that link; one we do not have: 307 to the default
    Accept: text/html (and */*)        the page a phone shows (resolver_page.py)
    Accept: application/json           the public facts and the proof bundle as JSON
    Accept: application/linkset+json   the linkset
    Accept: application/vnd.pharmasync.public-proof   the proof bundle's bytes

Every answer carries `Link: <…?linkType=all>; rel="linkset"`. `/.well-known/gs1resolver`
is the resolver's description file (GS1-Conformant Resolver standard: its root, the primary
key it reads, AI 01, and the GS1 link-type vocabulary). Refusals (problem+json): 400
naming the AI (`AI 01` for a wrong GTIN check digit, `AI 10`, `AI 21`, `AI 22`, `AI 17`) or
`path`; 406 `accept` for an Accept header none of these types meets. A pack's link
(`/21/{serial}`, with or without its lot) is answered with the pack's public facts
(cloud/contracts/public_pack.py): registered or not (suspect), in the supply chain or
decommissioned, the lot it is really in and that lot's facts, a label lot or expiry that
disagrees (suspect); its bundle proves the registration, the pack record and the serial's
inclusion in the registration's root.
"""

from __future__ import annotations

import datetime
from typing import Final

from aiohttp import web

from cloud.api.routes import resolver_links as links
from cloud.api.routes import resolver_page
from cloud.api.state import PUBLIC_CHECK
from cloud.contracts import digital_link, gs1
from cloud.contracts.digital_link import DigitalLink
from cloud.contracts.public_facts import utc
from cloud.services.refusals import LedgerError

routes = web.RouteTableDef()

HTML: Final = "text/html"
JSON: Final = "application/json"
# What Accept may choose, in the order a tie (or */*) prefers.
OFFERED: Final = (HTML, JSON, links.LINKSET, links.PROOF_TYPE)
MAX_ACCEPT: Final = 1024  # characters of Accept read; a longer header is refused
MAX_LINK_TYPE: Final = 128


def negotiate(accept: str | None) -> str:
    """Return the offered type `accept` prefers (highest q, then earliest in the header,
    then OFFERED's order); text/html without a header. Raises LedgerError 406 "accept"."""
    if not accept:
        return HTML
    if len(accept) > MAX_ACCEPT:
        raise LedgerError("accept", f"Accept of {len(accept)} characters, want <= {MAX_ACCEPT}")
    best: tuple[float, int, int] | None = None
    chosen = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        for rank, offered in enumerate(OFFERED):
            matches = media in (offered, "*/*") or media == offered.split("/")[0] + "/*"
            key = (q, -position, -rank)
            if matches and q > 0 and (best is None or key > best):
                best, chosen = key, offered
    if chosen is None:
        want = ", ".join(OFFERED)
        raise LedgerError("accept", f"got Accept {accept[:80]!r}, want one of {want}", 406)
    return chosen


def scanned_path(request: web.Request) -> DigitalLink:
    """The request's Digital Link path and query, read by the one Digital Link parser
    (cloud/contracts/digital_link.py). Raises LedgerError 400 naming the AI, or the part of
    the link ("path", "query", "linkType")."""
    today = datetime.datetime.now(datetime.UTC).date()
    path = request.raw_path.split("?", 1)[0]
    if len(path.rstrip("/").split("/")) % 2 == 0:  # "", "01", gtin, then AI/value pairs
        raise LedgerError(
            "path", f"path: got {path[:80]!r}, want /01/{{gtin}} then /AI/value pairs"
        )
    try:
        scanned = digital_link.parse_digital_link(request.raw_path, today)
    except gs1.Gs1Error as e:
        part = e.ai if isinstance(e, digital_link.DigitalLinkError) else f"AI {e.ai}"
        raise LedgerError("path" if part in ("uri", "host") else part, str(e)) from None
    if scanned.base:  # the route is at the host's root: nothing may come before /01/
        raise LedgerError(
            "path", f"path: got {scanned.base!r} before /01/, want nothing before /01/"
        )
    if scanned.link_type is not None and not 1 <= len(scanned.link_type) <= MAX_LINK_TYPE:
        raise LedgerError("linkType", f"linkType: want 1..{MAX_LINK_TYPE} characters")
    return scanned


@routes.get(r"/01/{tail:.*}")
async def resolve(request: web.Request) -> web.StreamResponse:
    """Resolve a GS1 Digital Link (module docstring)."""
    scanned = scanned_path(request)
    base = f"{request.scheme}://{request.host}"
    headers = {"Link": links.link_header(base, scanned), "Vary": "Accept"}
    if scanned.link_type in links.LINKSET_TYPES:
        return web.json_response(
            links.linkset(base, scanned), content_type=links.LINKSET, headers=headers
        )
    if scanned.link_type is not None:
        link = links.find(base, scanned, scanned.link_type) or links.links(base, scanned)[0]
        raise web.HTTPTemporaryRedirect(link.href, headers=headers)
    chosen = negotiate(request.headers.get("Accept"))
    if chosen == links.LINKSET:
        return web.json_response(
            links.linkset(base, scanned), content_type=links.LINKSET, headers=headers
        )
    if scanned.lot is None and scanned.serial is None:
        return _lotless(scanned, chosen, base, str(request.url), headers)
    service = request.app[PUBLIC_CHECK]
    check = await (service.lot(scanned) if scanned.serial is None else service.pack(scanned))
    as_of = None if check.as_of is None else utc(check.as_of)
    if chosen == links.PROOF_TYPE:
        if check.bundle is None:
            why = "the ledger has committed no state root yet"
            if check.as_of is None and (check.facts.get("serial") or {}).get("registered") is False:
                why = "the serial is not registered and no lot was scanned: nothing to prove"
            raise LedgerError("proof", why, 404)
        return web.Response(body=check.bundle.to_bytes(), content_type=chosen, headers=headers)
    if chosen == JSON:
        answer = {
            "gtin": scanned.gtin,
            "cpv": scanned.cpv,
            "lot": scanned.lot,
            "serial": scanned.serial,
            "facts": check.facts,
            "as_of": check.as_of,
            "as_of_utc": as_of,
            "committed_by": "the ledger (no replaying witness yet)",
            "proof": None if check.bundle is None else check.bundle.to_json(),
        }
        return web.json_response(answer, headers=headers)
    page = resolver_page.render(scanned, check.facts, as_of, base, links.PROOF_TYPE)
    return web.Response(text=page, content_type=HTML, headers=headers)


@routes.get("/.well-known/gs1resolver")
async def description(request: web.Request) -> web.Response:
    """The resolver description file (GS1-Conformant Resolver standard, its JSON schema's
    fields): where the resolver is, which primary keys and link types it reads."""
    return web.json_response(
        {
            "name": "PharmaSync ledger: public check of medicines",
            "resolverRoot": f"{request.scheme}://{request.host}",
            "supportedPrimaryKeys": [gs1.AI_GTIN],
            "supportedLinkType": [{"namespace": links.VOCABULARY, "prefix": "gs1:"}],
            "linkTypeDefaultCanBeLinkset": False,
        }
    )


def _lotless(
    scanned: DigitalLink, chosen: str, base: str, url: str, headers: dict[str, str]
) -> web.Response:
    """A GTIN without a lot: nothing to check (a lot's facts are per lot); say so."""
    reason = "no lot (AI 10) in the link: a pack's check needs its lot"
    if chosen == HTML:
        page = resolver_page.render(scanned, None, None, base, links.PROOF_TYPE)
        return web.Response(text=page, content_type=HTML, headers=headers)
    if chosen == links.PROOF_TYPE:
        raise LedgerError("AI 10", reason, 404)
    answer = {"gtin": scanned.gtin, "cpv": scanned.cpv, "checked": False, "reason": reason}
    return web.json_response(answer, headers=headers)
