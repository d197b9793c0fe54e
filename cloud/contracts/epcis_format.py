"""The EPCIS 2.0 `GS1-EPC-Format` request header (EPCIS 2.0 §12.6, REST bindings): whether
a document's identifiers are written as GS1 Digital Link URIs or as EPC URNs. Pure: the
caller passes a lookup of registered company prefixes (gs1_prefixes.prefix_of over a View).

    No_Preference            the default: Digital Link URIs, as the ledger writes them
    Always_GS1_Digital_Link  the same
    Always_EPC_URN           every lot, pack and SSCC whose GS1 company prefix is registered
                             as an EPC URN (epc_urn.py: LGTIN, SGTIN, SSCC); one whose prefix
                             is not stays a Digital Link URI (no URN can be written for it)

What is rewritten: quantity lists' epcClass (input/output/child too), epcList,
input/outputEPCList, childEPCs and parentID. eventIDs and everything else stay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from cloud.contracts import epc_urn
from cloud.contracts.epcis import DIGITAL_LINK, EpcError, match_uri

HEADER: Final = "GS1-EPC-Format"
NO_PREFERENCE: Final = "No_Preference"
ALWAYS_DIGITAL_LINK: Final = "Always_GS1_Digital_Link"
ALWAYS_URN: Final = "Always_EPC_URN"
FORMATS: Final = (NO_PREFERENCE, ALWAYS_DIGITAL_LINK, ALWAYS_URN)
_LISTS: Final = ("epcList", "inputEPCList", "outputEPCList", "childEPCs")
_QUANTITIES: Final = (
    "quantityList",
    "inputQuantityList",
    "outputQuantityList",
    "childQuantityList",
)
_SSCC_HEAD: Final = f"{DIGITAL_LINK}/00/"

# The registered company prefix of a GS1 key (a GTIN-14 or an SSCC), None if none is.
PrefixOf = Callable[[str], str | None]


def preference(value: str | None) -> str:
    """The format a request asks for (None: no header, No_Preference). Raises ValueError
    naming the values allowed."""
    if value is None:
        return NO_PREFERENCE
    if value not in FORMATS:
        raise ValueError(f"got {value[:40]!r}, want one of {', '.join(FORMATS)}")
    return value


def rewrite(document: dict[str, Any], prefix_of: PrefixOf) -> dict[str, Any]:
    """Return `document` (an EPCISDocument or EPCISQueryDocument) with its identifiers as EPC
    URNs where their company prefix is registered (module docstring); a new object, the
    argument unchanged."""
    body = document["epcisBody"]
    if "queryResults" in body:
        events = body["queryResults"]["resultsBody"]["eventList"]
    else:
        events = body["eventList"]
    cache: dict[str, str] = {}

    def urn(uri: str) -> str:
        if uri not in cache:
            cache[uri] = _urn(uri, prefix_of)
        return cache[uri]

    rewritten = [_event(e, urn) for e in events]
    out = {**document, "epcisBody": {**body}}
    if "queryResults" in body:
        results = body["queryResults"]
        out["epcisBody"]["queryResults"] = {
            **results,
            "resultsBody": {**results["resultsBody"], "eventList": rewritten},
        }
    else:
        out["epcisBody"]["eventList"] = rewritten
    return out


def _event(event: dict[str, Any], urn: Callable[[str], str]) -> dict[str, Any]:
    out = dict(event)
    for name in _LISTS:
        if name in out:
            out[name] = [urn(u) for u in out[name]]
    for name in _QUANTITIES:
        if name in out:
            out[name] = [{**q, "epcClass": urn(q["epcClass"])} for q in out[name]]
    if "parentID" in out:
        out["parentID"] = urn(out["parentID"])
    return out


def _urn(uri: str, prefix_of: PrefixOf) -> str:
    """`uri` as an EPC URN if it is a lot's, pack's or SSCC's Digital Link URI whose company
    prefix is registered, else `uri` itself."""
    if uri.startswith(_SSCC_HEAD):
        code = uri[len(_SSCC_HEAD) :]
        prefix = prefix_of(code) if len(code) == 18 else None
        return uri if prefix is None else epc_urn.sscc(code, len(prefix))
    try:
        epc = match_uri(uri)
    except EpcError:
        return uri  # not a GS1 key this module writes (a shipment's URN)
    prefix = prefix_of(epc.gtin)
    if prefix is None:
        return uri
    if epc.serial is not None:
        return epc_urn.sgtin(epc.gtin, len(prefix), epc.serial)
    assert epc.lot is not None
    return epc_urn.lgtin(epc.gtin, len(prefix), epc.lot)
