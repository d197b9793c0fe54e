"""The OpenAPI paths of the GS1 Digital Link resolver at the host's root (cloud/api/routes/
resolver.py), merged into the document by cloud/api/openapi.py. Each path shape the
resolver reads is listed: a GTIN alone, with its lot, with lot and serial, and each with a
consumer product variant (AI 22)."""

from __future__ import annotations

from typing import Any

from cloud.api.routes.resolver_links import LINKSET, PROOF_TYPE
from cloud.contracts.gs1 import LOT_MAX, SERIAL_MAX
from cloud.contracts.gs1 import SERIAL_MAX as CPV_MAX  # AI 22: X..20, as AI 21

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


GTIN = _path(
    "gtin",
    {"type": "string", "pattern": "^([0-9]{8}|[0-9]{12,14})$"},
    "GTIN-8, -12, -13 or -14 (AI 01), check digit verified; answered as 14 digits",
)
CPV = _path("cpv", {"type": "string", "minLength": 1, "maxLength": CPV_MAX}, "AI 22")
LOT = _path("lot", {"type": "string", "minLength": 1, "maxLength": LOT_MAX}, "Lot (AI 10)")
SERIAL = _path(
    "serial", {"type": "string", "minLength": 1, "maxLength": SERIAL_MAX}, "Serial (AI 21)"
)
QUERY = [
    {
        "name": "17",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]{6}$"},
        "description": "The pack's expiry (AI 17, YYMMDD, day 00 = the month's last day), "
        "compared with the registered one",
    },
    {
        "name": "linkType",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": "`all`: the linkset; a GS1 link type (`gs1:pip`, "
        "`gs1:recallStatus`, ...): a 307 to that link, or to the default link if none",
    },
]
PACK = {
    "type": "object",
    "description": "A pack's public facts (cloud/contracts/public_pack.py): registered by the"
    " manufacturer or not (suspect), its status (active: in the supply chain; else"
    " decommissioned: dispensed, destroyed, ...), its registered lot and the lot it is in now",
    "required": ["value", "checked", "registered"],
    "properties": {
        "value": {"type": "string"},
        "checked": {"type": "boolean"},
        "registered": {"type": "boolean"},
        "registered_lot": {"type": "string"},
        "registration": {"type": "integer", "minimum": 1},
        "registered_since": {"type": "integer"},
        "status": {"type": "string"},
        "in_supply_chain": {"type": "boolean"},
        "lot": {"type": "string"},
        "moved": {"type": "boolean"},
    },
}
FACTS = {
    "type": "object",
    "required": ["authentic", "verdict", "reasons", "serial"],
    "properties": {
        "authentic": {"type": "boolean"},
        "verdict": {"enum": ["dispensable", "do not dispense", "unknown", "suspect"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "expiry": {"type": "string"},
        "expired": {"type": "boolean"},
        "recalled": {"type": "boolean"},
        "quality": {"type": ["object", "null"]},
        "recall": {"type": ["object", "null"]},
        "coldchain": {"type": "object"},
        "serial": {"oneOf": [{"type": "null"}, PACK]},
    },
}
CHECK = {
    "type": "object",
    "description": "The public facts of the lot and their proof bundle (docs/protocol.md, "
    "'Public check proof'); for a GTIN alone, `checked: false` and why",
    "properties": {
        "gtin": {"type": "string", "pattern": "^[0-9]{14}$"},
        "lot": {"type": ["string", "null"]},
        "serial": {"type": ["string", "null"]},
        "facts": FACTS,
        "as_of": {"type": ["integer", "null"]},
        "proof": {"type": ["object", "null"]},
        "checked": {"type": "boolean"},
    },
}


def _operation(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": "GS1 Digital Link resolver (GS1-Conformant Resolver standard): "
            "content negotiation by Accept; the Link header names the linkset.",
            "parameters": [*parameters, *QUERY],
            "responses": {
                "200": {
                    "description": "The public check: a page (text/html), JSON, the linkset "
                    "(RFC 9264) or the proof bundle's bytes",
                    "content": {
                        "text/html": {"schema": {"type": "string"}},
                        "application/json": {"schema": CHECK},
                        LINKSET: {
                            "schema": {
                                "type": "object",
                                "required": ["linkset"],
                                "properties": {"linkset": {"type": "array"}},
                            }
                        },
                        PROOF_TYPE: {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "307": {"description": "To the link of the `linkType` asked for"},
                "400": _problem("A malformed link; `reason` names the AI (`AI 01`, ...) or `path`"),
                "404": _problem(
                    "No proof to give: no lot in the link, an unregistered serial without its"
                    " lot, or no state root yet"
                ),
                "406": _problem("No offered media type meets Accept"),
            },
        }
    }


DESCRIPTION = {
    "get": {
        "summary": "The GS1 resolver description file",
        "responses": {
            "200": {
                "description": "Root, primary keys (AI 01) and link-type vocabulary",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["resolverRoot", "supportedPrimaryKeys"],
                            "properties": {
                                "name": {"type": "string"},
                                "resolverRoot": {"type": "string"},
                                "supportedPrimaryKeys": {"type": "array"},
                                "supportedLinkType": {"type": "array"},
                                "linkTypeDefaultCanBeLinkset": {"type": "boolean"},
                            },
                        }
                    }
                },
            }
        },
    }
}


def resolver_paths() -> dict[str, Any]:
    """The resolver's paths for the OpenAPI document."""
    return {
        "/.well-known/gs1resolver": DESCRIPTION,
        "/01/{gtin}": _operation("A GTIN (its lots are checked one by one)", [GTIN]),
        "/01/{gtin}/10/{lot}": _operation("A lot's public check", [GTIN, LOT]),
        "/01/{gtin}/10/{lot}/21/{serial}": _operation(
            "A pack's public check: its registration, status and the lot it is in now",
            [GTIN, LOT, SERIAL],
        ),
        "/01/{gtin}/21/{serial}": _operation(
            "A pack's public check without its lot (read from its registration)",
            [GTIN, SERIAL],
        ),
        "/01/{gtin}/22/{cpv}/10/{lot}": _operation("A lot of a product variant", [GTIN, CPV, LOT]),
        "/01/{gtin}/22/{cpv}/10/{lot}/21/{serial}": _operation(
            "A pack of a product variant", [GTIN, CPV, LOT, SERIAL]
        ),
    }
