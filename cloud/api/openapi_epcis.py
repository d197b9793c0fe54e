"""The OpenAPI paths of EPCIS 2.0 over the ledger (cloud/api/routes/epcis.py): the export
under /v1 and the REST bindings' /epcis/events and /epcis/capture. Joined into the one
document by cloud/api/openapi.py."""

from __future__ import annotations

from typing import Any

from cloud.api.openapi import BAD, BEARER_401, BEARER_403, LOT_PATH, _problem
from cloud.api.routes.epcis import MAX_CAPTURE, STATEMENT_HEADER
from cloud.contracts import epcis, epcis_format, epcis_query, epcis_statement

JSON_LD = "application/ld+json"
EPCIS_PROBLEM = {
    "type": "object",
    "required": ["type", "status", "reason"],
    "properties": {
        "type": {"type": "string", "pattern": "^epcisException:"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "reason": {"type": "string"},
    },
}
DOCUMENT = {
    "type": "object",
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "description": "An EPCISDocument (JSON-LD), valid against GS1's EPCIS 2.0 JSON Schema",
    "properties": {
        "type": {"const": "EPCISDocument"},
        "schemaVersion": {"const": epcis.SCHEMA_VERSION},
        "epcisBody": {
            "type": "object",
            "required": ["eventList"],
            "properties": {"eventList": {"type": "array", "items": {"type": "object"}}},
        },
    },
}
QUERY_DOCUMENT = {
    "type": "object",
    "required": ["@context", "type", "epcisBody"],
    "description": "An EPCISQueryDocument answering the SimpleEventQuery",
    "properties": {"type": {"const": "EPCISQueryDocument"}},
}


def _epcis_problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": EPCIS_PROBLEM}},
    }


EPC_FORMAT = {
    "name": epcis_format.HEADER,
    "in": "header",
    "required": False,
    "description": "EPCIS 2.0: Always_EPC_URN writes each lot, pack and SSCC whose GS1 company "
    "prefix a manufacturer declared (lots gs1-prefix) as an EPC URN (LGTIN, SGTIN, SSCC); "
    "the others stay GS1 Digital Link URIs, the default (No_Preference, "
    "Always_GS1_Digital_Link). Any other value is a 400 naming the header.",
    "schema": {"enum": list(epcis_format.FORMATS)},
}
EPC_FORMAT_ANSWERED = {
    epcis_format.HEADER: {
        "description": "The format applied (No_Preference without the header)",
        "schema": {"enum": list(epcis_format.FORMATS)},
    }
}
URNS = (
    "; EPC URNs (urn:epc:class:lgtin:…, urn:epc:id:sgtin:…) where split at the GTIN's "
    "registered GS1 company prefix (else a 400 saying why)"
)


def _list(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{description}; several values pipe-delimited (a|b)",
        "schema": {"type": "string"},
    }


def paths() -> dict[str, Any]:
    """GET /v1/lots/{gtin}/{lot}/epcis, GET /epcis/events, POST /epcis/capture."""
    time = {"type": "string", "format": "date-time"}
    return {
        "/v1/lots/{gtin}/{lot}/epcis": {
            "get": {
                "summary": "A lot's and its descendants' history as an EPCISDocument",
                "description": "Commissioning, shipping and receiving (sources and "
                "destinations: the parties' DIDs), splits (TransformationEvent), "
                "dispensing, holds, quarantines, dispositions, recalls and expiry, and per "
                "leg a sensor_reporting event with min/max/mean temperature (CEL) and "
                "relative humidity (RelativeHumidity, P1: percent) and "
                "ALARM_CONDITION exceptions from the aggregates; serialized packs' "
                "commissioning, decommissioning and splits, and a shipment's named packs as "
                "AggregationEvents (packing before its shipping, parentID its SSCC's Digital "
                "Link or the shipment; unpacking at its receive). Lots are GS1 Digital Link "
                "URIs in quantity lists. What the bearer sees follows the read matrix "
                "(docs/contracts.md §4 'EPCIS'): no event of a leg it may not read.",
                "parameters": [*LOT_PATH, EPC_FORMAT],
                "responses": {
                    "200": {
                        "description": "The EPCISDocument",
                        "headers": EPC_FORMAT_ANSWERED,
                        "content": {JSON_LD: {"schema": DOCUMENT}},
                    },
                    "400": BAD,
                    "401": BEARER_401,
                    "403": BEARER_403,
                    "404": _problem("The lot was never commissioned"),
                },
            }
        },
        "/epcis/events": {
            "get": {
                "summary": "EPCIS 2.0 SimpleEventQuery over the ledger's events",
                "description": "The events the bearer may see (the public: public records) "
                "that match every parameter given, in (eventTime, eventID) order, at most "
                f"perPage (default {epcis_query.DEFAULT_PER_PAGE}); while more remain, a "
                '`Link: <…>; rel="next"` header carries the next page\'s URL. An unknown, '
                "repeated or malformed parameter is a 400 "
                "epcisException:QueryParameterException naming it.",
                "parameters": [
                    _list("eventType", "ObjectEvent, TransformationEvent, ..."),
                    _list("EQ_bizStep", "CBV business steps (bare, URN or Web URI)"),
                    _list("EQ_disposition", "CBV dispositions (bare, URN or Web URI)"),
                    _list("EQ_bizLocation", "Business locations (participants' DIDs)"),
                    _list("MATCH_epc", "GS1 Digital Link URIs (lots match quantity lists)" + URNS),
                    _list("MATCH_anyEPC", "GS1 Digital Link URIs, in any list" + URNS),
                    _list("MATCH_epcClass", "Lot URIs (/01/{gtin}/10/{lot})" + URNS),
                    {
                        "name": "GE_eventTime",
                        "in": "query",
                        "description": "eventTime at or after (RFC 3339, with an offset)",
                        "schema": time,
                    },
                    {
                        "name": "LT_eventTime",
                        "in": "query",
                        "description": "eventTime before (RFC 3339, with an offset)",
                        "schema": time,
                    },
                    {
                        "name": "perPage",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": epcis_query.MAX_PER_PAGE,
                        },
                    },
                    {
                        "name": "nextPageToken",
                        "in": "query",
                        "description": "From a previous page's next link",
                        "schema": {"type": "string"},
                    },
                    EPC_FORMAT,
                ],
                "responses": {
                    "200": {
                        "description": "One page of matching events",
                        "headers": {
                            "Link": {
                                "description": 'The next page: <url>; rel="next"',
                                "schema": {"type": "string"},
                            },
                            **EPC_FORMAT_ANSWERED,
                        },
                        "content": {JSON_LD: {"schema": QUERY_DOCUMENT}},
                    },
                    "400": _epcis_problem("epcisException:QueryParameterException"),
                    "401": _epcis_problem("A bad, forged or expired bearer token"),
                    "403": _epcis_problem("The bearer's did is no longer a participant"),
                },
            }
        },
        "/epcis/capture": {
            "post": {
                "summary": "Record a partner's EPCISDocument as its signed statement",
                "description": f"The body (at most {MAX_CAPTURE} bytes) is an EPCISDocument "
                f"of 1 to {epcis_statement.MAX_EVENTS} shipping and receiving ObjectEvents "
                "of one lot already on the ledger, each naming its shipment "
                f"({epcis.SHIPMENT_URN}<id>, type desadv). The {STATEMENT_HEADER} header is "
                "base64url of a signed lots `statement` transaction envelope whose args are "
                "gtin, lot, document (SHA-256 hex of the body's bytes) and events (their "
                "count). Each event is checked against the ledger (shipment, lot, parties, "
                "quantity, time within 15 minutes); the first that contradicts it is named "
                "(409 contradiction), else the statement is applied (201). A lot is named by "
                "its Digital Link URI or by an LGTIN URN split at its GTIN's registered GS1 "
                "company prefix (else 409 contradiction, field quantityList, saying why).",
                "parameters": [
                    {
                        "name": STATEMENT_HEADER,
                        "in": "header",
                        "required": True,
                        "description": "base64url of the statement's envelope JSON",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON_LD: {"schema": DOCUMENT}},
                },
                "responses": {
                    "201": {
                        "description": "The statement, applied",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["statement", "document", "events"],
                                    "properties": {
                                        "statement": {"type": "object"},
                                        "document": {"type": "string"},
                                        "events": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    "400": _epcis_problem("A malformed body or statement"),
                    "401": _epcis_problem("No statement, or its signature does not verify"),
                    "403": _epcis_problem("The signer is no participant, or its cell refuses"),
                    "409": _epcis_problem(
                        "An event contradicts the ledger (named), or the contract refuses"
                    ),
                    "413": _epcis_problem(f"Body over {MAX_CAPTURE} bytes"),
                    "422": _epcis_problem(
                        "The statement signs another document, counts other events, or is "
                        "not a lots statement"
                    ),
                },
            }
        },
    }
