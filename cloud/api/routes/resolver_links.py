"""The links a GS1 Digital Link resolver lists for a GTIN or a lot (GS1-Conformant Resolver
standard; RFC 9264 linksets): each link type (a GS1 Web Vocabulary term) to our own routes.

    gs1:defaultLink, gs1:pip    this resolver's page (text/html): the public check
    gs1:verificationService     the public check as JSON, and its proof bundle (binary)
    gs1:recallStatus            GET /v1/lots/{gtin}/{lot}: the recall record, proven
    gs1:certificationInfo       GET /v1/certificates?subject={gtin}/{lot}: the lot's certificates
    gs1:traceability            GET /v1/lots/{gtin}/{lot}/history: what the public sees of it
    gs1:epcis                   GET /v1/lots/{gtin}/{lot}/epcis: its EPCIS 2.0 document
                                (JSON-LD), as the read policy shows it to the bearer

A pack's path lists the same for the lot on its label. A lot-less path (a GTIN alone) lists
the first two only. `linkset` is the application/linkset+json document of
`?linkType=all` (GS1 Digital Link 1.1) or `?linkType=linkset` (GS1-Conformant Resolver);
`find` the link a `?linkType=` names, for the resolver's redirect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import quote

from cloud.contracts import public_proof
from cloud.contracts.digital_link import DigitalLink

VOCABULARY: Final = "https://gs1.org/voc/"
LINKSET: Final = "application/linkset+json"
PROOF_TYPE: Final = public_proof.MEDIA_TYPE  # the bundle's bytes
EPCIS_TYPE: Final = "application/ld+json"  # an EPCISDocument (EPCIS 2.0 JSON-LD binding)
ALL: Final = "all"  # GS1 Digital Link 1.1's value for the linkset
LINKSET_TYPES: Final = (ALL, "linkset")  # and the GS1-Conformant Resolver standard's
REF_VOCABULARY: Final = "https://ref.gs1.org/voc/"  # the vocabulary's other published root


@dataclass(frozen=True)
class Link:
    """One typed link: its GS1 link type (without the vocabulary), target, media type, title."""

    rel: str
    href: str
    type: str
    title: str

    def to_json(self) -> dict[str, Any]:
        return {"href": self.href, "title": self.title, "type": self.type, "hreflang": ["en"]}


def path_of(scanned: DigitalLink) -> str:
    """The canonical path of `scanned` (GTIN-14, its qualifiers in order, percent-encoded),
    without query: what its links are anchored at."""
    return replace(scanned, attributes=(), link_type=None).uri("")


def links(base: str, scanned: DigitalLink) -> list[Link]:
    """The links of `scanned` on the resolver at `base` (scheme and host), default first."""
    here = base + path_of(scanned)
    found = [
        Link("defaultLink", here, "text/html", "Public check of this product (PharmaSync)"),
        Link("pip", here, "text/html", "Product information: the public check"),
    ]
    if scanned.lot is None:
        return found
    lot = f"{scanned.gtin}/{quote(scanned.lot, safe='')}"
    return [
        *found,
        Link("verificationService", here, "application/json", "Public check as JSON"),
        Link("verificationService", here, PROOF_TYPE, "Proof bundle: pharmasync verify --public"),
        Link("recallStatus", f"{base}/v1/lots/{lot}", "application/json", "Recall status"),
        Link(
            "certificationInfo",
            f"{base}/v1/certificates?subject={quote(lot, safe='')}",
            "application/json",
            "Certificates of this lot",
        ),
        Link("traceability", f"{base}/v1/lots/{lot}/history", "application/json", "History"),
        Link("epcis", f"{base}/v1/lots/{lot}/epcis", EPCIS_TYPE, "EPCIS 2.0 events of this lot"),
    ]


def linkset(base: str, scanned: DigitalLink) -> dict[str, Any]:
    """The RFC 9264 JSON linkset of `scanned`: one context object anchored at its URI,
    each link type a full vocabulary URI."""
    context: dict[str, Any] = {"anchor": base + path_of(scanned)}
    for link in links(base, scanned):
        context.setdefault(VOCABULARY + link.rel, []).append(link.to_json())
    return {"linkset": [context]}


def find(base: str, scanned: DigitalLink, link_type: str) -> Link | None:
    """The first link of type `link_type` (`gs1:pip` or its full URI), None if none."""
    rel = link_type.removeprefix("gs1:").removeprefix(VOCABULARY).removeprefix(REF_VOCABULARY)
    return next((link for link in links(base, scanned) if link.rel == rel), None)


def link_header(base: str, scanned: DigitalLink) -> str:
    """The Link header every answer carries: where its linkset is (RFC 9264 §6)."""
    return f'<{base}{path_of(scanned)}?linkType={ALL}>; rel="linkset"; type="{LINKSET}"'
