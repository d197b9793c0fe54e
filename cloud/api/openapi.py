"""The cloud API's OpenAPI 3.1 document, served at /v1/openapi.json and checked against the
running app by tests/cloud/api/test_openapi.py (schemathesis): keep it true when routes change."""

from __future__ import annotations

from typing import Any

from cloud.api.openapi_resolver import resolver_paths
from cloud.api.routes.contracts import MAX_BATCH, MAX_BATCH_BYTES
from cloud.api.routes.feeds import DEFAULT_PAGE
from cloud.api.routes.packs import MAX_VERIFY_BYTES
from cloud.api.routes.receipts import MAX_COSIGNATURES
from cloud.contracts import access, auth, feeds, pack_facts, packs, tx
from cloud.services import replay
from device import reading
from gateway import (
    alarm_ack,
    batch,
    config_entry,
    cosigned_receipt,
    event,
    gateway_auth,
    jsonbound,
)
from gateway import registry_change as registry
from gateway.alarms import LOT_SIGNED_FIELDS
from gateway.refusal import INT64_MAX

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
APPLIED_FIELDS = ("index", "id", "root", "records", "root_index")  # a 201 to POST /v1/tx


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


MAX_INDEX = INT64_MAX - 1  # a log index is below a log size (cloud/api/routes/__init__.py)


def _query(
    name: str, description: str, required: bool = False, maximum: int = INT64_MAX
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": 0, "maximum": maximum},
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


DEVICE = _path("device", HEX32, "The box's x-only public key, hex")
LOT_PATH = [  # a lot in a path: /lots/{gtin}/{lot}
    _path("gtin", {"type": "string", "pattern": "^[0-9]{14}$"}, "GTIN-14"),
    _path("lot", {"type": "string", "minLength": 1, "maxLength": 20}, "Lot (AI 10)"),
]
PROOF = {"type": "array", "items": HEX32}
BAD = _problem("Malformed request or failed verification; `reason` names the check")
NOT_FOUND = _problem("No such thing")
# An owner-signed change (POST /v1/registry, /v1/config; gateway/signed_change.py).
SIGNED_CHANGE = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["change", "owner", "signature"],
                "properties": {"change": {"type": "object"}, "owner": HEX32, "signature": HEX},
            }
        }
    },
}
APPLIED = _json(
    "Applied",
    {"type": "object", "required": ["log_index"], "properties": {"log_index": {"type": "integer"}}},
)


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    receipt = {
        "type": "object",
        "required": ["gateway", "seq", "header_hash", "log_index", "checkpoint"],
        "properties": {
            "gateway": HEX32,
            "seq": {"type": "integer"},
            "header_hash": HEX32,
            "log_index": {"type": "integer"},
            "checkpoint": {"type": "string"},
        },
    }
    bundle = {
        "type": "object",
        "required": ["reading", "batch", "log", "checkpoint", "log_vkey"],
        "properties": {
            "reading": HEX,
            "batch": {
                "type": "object",
                "required": ["header", "index", "size", "proof"],
                "properties": {
                    "header": HEX,
                    "index": {"type": "integer"},
                    "size": {"type": "integer"},
                    "proof": PROOF,
                },
            },
            "log": {
                "type": "object",
                "required": ["entry", "index", "size", "proof"],
                "properties": {
                    "entry": HEX,
                    "index": {"type": "integer"},
                    "size": {"type": "integer"},
                    "proof": PROOF,
                },
            },
            "checkpoint": {"type": "string"},
            "log_vkey": {"type": "string"},
        },
    }
    device = {
        "type": "object",
        "required": ["key", "site", "label", "last_seq"],
        "properties": {
            "key": HEX32,
            "site": {"type": "string"},
            "label": {"type": "string"},
            "last_seq": {"type": "integer"},
        },
    }
    where = {
        "type": "object",
        "required": ["log_index", "leaf"],
        "properties": {"log_index": {"type": "integer"}, "leaf": {"type": "integer"}},
    }
    sighting = {
        "type": "object",
        "required": ["seq", "log_index", "leaf", "gateway", "batch", "first"],
        "properties": {
            "seq": {"type": "integer"},
            "log_index": {"type": "integer"},
            "leaf": {"type": "integer"},
            "gateway": HEX32,
            "batch": {"type": "integer"},
            "first": where,
            "stored": HEX,
            "conflicting": HEX,
        },
    }
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PharmaSync cloud ledger",
            "version": "1",
            "description": "Zero-trust batch ingest, a verifiable RFC 6962 log with C2SP "
            "signed checkpoints, proofs and offline-verifiable proof bundles.",
        },
        "paths": {
            "/v1/batches": {
                "post": {
                    "summary": "Upload a sealed batch (gateways)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/octet-stream": {
                                "schema": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": f"{batch.SIZE}-byte signed header, then "
                                    f"{reading.SIZE}-byte readings",
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json("Stored: the receipt", receipt),
                        "200": _json("Stored before: the original receipt", receipt),
                        "400": BAD,
                        "409": _problem("`chain` or `conflict`: not the gateway's next batch"),
                        "413": _problem("Body too large"),
                        "415": _problem("Not application/octet-stream"),
                    },
                }
            },
            "/v1/checkpoint": {
                "get": {
                    "summary": "The latest signed checkpoint (C2SP tlog-checkpoint note)",
                    "responses": {"200": _text("The signed note")},
                }
            },
            "/v1/log/vkey": {
                "get": {
                    "summary": "The log's verifier key (signed-note format)",
                    "responses": {"200": _text("name+keyid+base64 key")},
                }
            },
            "/v1/log/entries": {
                "get": {
                    "summary": "Log entries [start, end), at most 1,000",
                    "parameters": [
                        _query("start", "First index", True),
                        _query("end", "One past the last index"),
                    ],
                    "responses": {
                        "200": _json(
                            "Entries, hex",
                            {
                                "type": "object",
                                "required": ["start", "entries"],
                                "properties": {
                                    "start": {"type": "integer"},
                                    "entries": {"type": "array", "items": HEX},
                                },
                            },
                        ),
                        "400": BAD,
                    },
                }
            },
            "/v1/log/entries/{index}/readings": {
                "get": {
                    "summary": "The readings of a batch entry, in leaf order",
                    "parameters": [
                        _path(
                            "index",
                            {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
                            "Log index",
                        )
                    ],
                    "responses": {
                        "200": {
                            "description": "110-byte readings",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        "400": BAD,
                        "404": NOT_FOUND,
                    },
                }
            },
            "/v1/log/proof/inclusion": {
                "get": {
                    "summary": "Inclusion proof of an entry by index or leaf hash",
                    "parameters": [
                        _query("index", "Entry index (or give hash)", maximum=MAX_INDEX),
                        {
                            "name": "hash",
                            "in": "query",
                            "schema": HEX32,
                            "description": "RFC 6962 leaf hash of the entry",
                        },
                        _query("size", "Tree size (default: latest checkpoint)"),
                    ],
                    "responses": {
                        "200": _json(
                            "The proof",
                            {
                                "type": "object",
                                "required": ["index", "size", "leaf_hash", "proof"],
                                "properties": {
                                    "index": {"type": "integer"},
                                    "size": {"type": "integer"},
                                    "leaf_hash": HEX32,
                                    "proof": PROOF,
                                },
                            },
                        ),
                        "400": BAD,
                        "404": NOT_FOUND,
                    },
                }
            },
            "/v1/log/proof/consistency": {
                "get": {
                    "summary": "Consistency proof between two tree sizes",
                    "parameters": [
                        _query("old", "Older size", True),
                        _query("new", "Newer size (default: latest checkpoint)"),
                    ],
                    "responses": {
                        "200": _json(
                            "The proof",
                            {
                                "type": "object",
                                "required": ["old", "new", "proof"],
                                "properties": {
                                    "old": {"type": "integer"},
                                    "new": {"type": "integer"},
                                    "proof": PROOF,
                                },
                            },
                        ),
                        "400": BAD,
                    },
                }
            },
            "/v1/readings/{device}/{seq}/proof": {
                "get": {
                    "summary": "Proof bundle: verify one reading offline",
                    "parameters": [
                        DEVICE,
                        _path(
                            "seq",
                            {"type": "integer", "minimum": 0, "maximum": reading.SEQ_MAX},
                            "Sequence number",
                        ),
                    ],
                    "responses": {
                        "200": _json("The bundle", bundle),
                        "400": BAD,
                        "404": NOT_FOUND,
                    },
                }
            },
            "/v1/devices/{device}/readings": {
                "get": {
                    "summary": "A box's readings in a time window",
                    "parameters": [
                        DEVICE,
                        _query("start", "Unix seconds (default: a day ago)"),
                        _query("end", "Unix seconds, exclusive (default: now)"),
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                    ],
                    "responses": {
                        "200": _json("Readings, oldest first", {"type": "array"}),
                        "400": BAD,
                    },
                }
            },
            "/v1/devices/{device}/attachments": {
                "get": {
                    "summary": "The lots, shipments or zones a box was attached to",
                    "parameters": [DEVICE],
                    "responses": {"200": _json("Attachments", {"type": "array"}), "400": BAD},
                }
            },
            "/v1/devices/{device}/equivocations": {
                "get": {
                    "summary": "A box's equivocations: two signed readings with one seq",
                    "description": "Each sighting of other bytes for a stored (box, seq), in "
                    "log order: where it was carried, the stored bytes (served as the reading) "
                    "and the conflicting ones (kept as evidence, never served).",
                    "parameters": [DEVICE, limit],
                    "responses": {
                        "200": _json("Equivocations", {"type": "array", "items": sighting}),
                        "400": BAD,
                    },
                }
            },
            "/v1/devices/{device}/sightings": {
                "get": {
                    "summary": "A box's duplicate sightings: stored readings carried again",
                    "parameters": [DEVICE, limit],
                    "responses": {
                        "200": _json("Duplicate sightings", {"type": "array", "items": sighting}),
                        "400": BAD,
                    },
                }
            },
            "/v1/devices": {
                "get": {
                    "summary": "Registered boxes",
                    "responses": {"200": _json("Boxes", {"type": "array", "items": device})},
                }
            },
            "/v1/gateways": {
                "get": {
                    "summary": "Registered gateways",
                    "responses": {"200": _json("Gateways", {"type": "array"})},
                }
            },
            "/v1/registry": {
                "post": {
                    "summary": "Apply an owner-signed registry change",
                    "description": f"The body is at most {registry.MAX_REQUEST_BYTES} bytes of "
                    f"UTF-8 JSON nested at most {jsonbound.MAX_DEPTH} deep, without duplicate "
                    "names, NaN or lone surrogates; time, start and end are integers 0 to "
                    f"{INT64_MAX}. Each refusal names its limit (`reason` json, or the field).",
                    "requestBody": SIGNED_CHANGE,
                    "responses": {
                        "201": APPLIED,
                        "400": BAD,
                        "403": _problem("Unknown owner or bad signature"),
                        "404": NOT_FOUND,
                        "409": _problem("Replayed request"),
                        "413": _problem(f"Body over {registry.MAX_REQUEST_BYTES} bytes"),
                    },
                }
            },
            **_event_paths(),
            **_receipt_paths(receipt),
            **_config_paths(),
            **_alarm_ack_paths(),
            **_gateway_lot_paths(),
            **_contract_paths(),
            **_trace_and_feed_paths(),
            **_lot_history_paths(),
            **_epcis_paths(),
            **_auth_paths(),
            **_read_paths(),
            **_stock_paths(),
            **_pack_paths(),
            **resolver_paths(),  # GS1 Digital Link, at the host's root
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": _text("Text exposition format")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Health check",
                    "responses": {"200": _json("Healthy", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "reason"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                }
            }
        },
    }


def _config_paths() -> dict[str, Any]:
    """POST /v1/config, GET /v1/config/owners and GET /v1/registry/entries (docs/protocol.md,
    "Configuration entries")."""
    index = {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}
    entries = {
        "type": "object",
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "entry"],
                    "properties": {"index": index, "entry": HEX},
                },
            }
        },
    }
    return {
        "/v1/config": {
            "post": {
                "summary": "Add or remove an owner or an ack key (signed by a current owner)",
                "description": f"The body is at most {config_entry.MAX_REQUEST_BYTES} bytes of "
                f"bounded JSON (as /v1/registry's). The change's op is one of "
                f"{list(config_entry.OPS[1:])}; the bootstrap is written by `cloud serve`, "
                "never posted.",
                "requestBody": SIGNED_CHANGE,
                "responses": {
                    "201": APPLIED,
                    "400": BAD,
                    "403": _problem("The signer is not an owner, or a bad signature"),
                    "409": _problem("Replayed, an owner already, not an owner, the last owner"),
                    "413": _problem(f"Body over {config_entry.MAX_REQUEST_BYTES} bytes"),
                },
            }
        },
        "/v1/config/owners": {
            "get": {
                "summary": "The owner keys after the log's last configuration entry",
                "responses": {
                    "200": _json(
                        "Owners",
                        {
                            "type": "object",
                            "required": ["owners"],
                            "properties": {"owners": {"type": "array", "items": HEX32}},
                        },
                    )
                },
            }
        },
        "/v1/registry/entries": {
            "get": {
                "summary": "Registry (0x02) and configuration (0x06) entries, oldest first",
                "description": "A page of at most 500 entries with their log indices, within "
                "the latest checkpoint; ask again with `after` = the last index seen.",
                "parameters": [
                    _query("after", "Only entries with a larger log index", maximum=MAX_INDEX)
                ],
                "responses": {"200": _json("Entries", entries), "400": BAD},
            }
        },
    }


def _event_paths() -> dict[str, Any]:
    """POST /v1/events and GET /v1/gateways/{gateway}/events (docs/protocol.md, "Gateway
    events")."""
    signed: dict[str, Any] = {
        "type": "object",
        "required": ["event", "signature"],
        "properties": {
            "event": {
                "type": "object",
                "required": list(event.MEMBERS),
                "properties": {
                    "body": {"type": "object"},
                    "gateway": HEX32,
                    "kind": {"type": "string", "enum": list(event.KINDS)},
                    "seq": {"type": "integer", "minimum": 0, "maximum": event.MAX_INT},
                    "time": {"type": "integer", "minimum": 0, "maximum": event.MAX_INT},
                },
            },
            "signature": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
        },
    }
    stored: dict[str, Any] = {
        "type": "object",
        "required": ["seq", "log_index"],
        "properties": {"seq": {"type": "integer"}, "log_index": {"type": "integer"}},
    }
    answer = {
        "type": "object",
        "required": ["gateway", "events"],
        "properties": {"gateway": HEX32, "events": {"type": "array", "items": stored}},
    }
    listed = {
        "type": "object",
        "required": ["gateway", "events"],
        "properties": {
            "gateway": HEX32,
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "log_index", "event", "signature"],
                    "properties": stored["properties"] | signed["properties"],
                },
            },
        },
    }
    return {
        "/v1/events": {
            "post": {
                "summary": "Upload a page of signed gateway events (gateways)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["events"],
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": event.MAX_PAGE,
                                        "items": signed,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("Stored (some events new): each event's log index", answer),
                    "200": _json("All stored before: each event's log index", answer),
                    "400": BAD,
                    "403": _problem("Unregistered gateway"),
                    "409": _problem("Another event at a stored seq, or a gap in the seqs"),
                    "413": _problem("Body too large"),
                    "415": _problem("Not application/json"),
                },
            }
        },
        "/v1/gateways/{gateway}/events": {
            "get": {
                "summary": "A gateway's events, oldest first",
                "parameters": [
                    _path("gateway", HEX32, "The gateway's x-only public key, hex"),
                    _query("after", "Only events with a larger seq (default: from the first)"),
                    {
                        **_query("limit", "At most this many events (default 100)"),
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {"200": _json("Events", listed), "400": BAD, "404": NOT_FOUND},
            }
        },
    }


def _receipt_paths(receipt: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/batches/{gateway}/{seq}/receipt (docs/protocol.md, "Cosigned receipt")."""
    proof = {"type": "array", "maxItems": cosigned_receipt.MAX_PROOF, "items": HEX32}
    cosigned = {
        "type": "object",
        "required": ["receipt", "cosigned"],
        "properties": {
            "receipt": receipt,
            "cosigned": {
                "type": "object",
                "required": ["entry", "size", "checkpoint", "inclusion", "consistency"],
                "properties": {
                    "entry": {"type": "string", "pattern": f"^01[0-9a-f]{{{2 * batch.SIZE}}}$"},
                    "size": {"type": "integer", "minimum": 1},
                    "checkpoint": {"type": "string"},
                    "inclusion": proof,
                    "consistency": proof,
                },
            },
        },
    }
    return {
        "/v1/batches/{gateway}/{seq}/receipt": {
            "get": {
                "summary": "A batch's receipt with a later witness-cosigned checkpoint",
                "parameters": [
                    _path("gateway", HEX32, "The gateway's x-only public key, hex"),
                    _path(
                        "seq", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}, "Batch seq"
                    ),
                    {
                        **_query("cosignatures", "Witness cosignatures wanted (default 1)"),
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_COSIGNATURES},
                    },
                ],
                "responses": {
                    "200": _json("The cosigned receipt", cosigned),
                    "400": BAD,
                    "404": _problem("No such batch"),
                    "409": _problem("No checkpoint with that many cosignatures includes it yet"),
                },
            }
        },
    }


def _alarm_ack_paths() -> dict[str, Any]:
    """POST /v1/alarm-acks and GET /v1/gateways/{gateway}/alarm-acks (docs/protocol.md,
    "Alarm acknowledgements through the cloud")."""
    signed: dict[str, Any] = {
        "type": "object",
        "required": ["ack", "key", "signature"],
        "properties": {
            "ack": {
                "type": "object",
                "required": ["alarm", "at", "by", "gateway", "v"],
                "properties": {
                    "alarm": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
                    "at": {"type": "integer", "minimum": 0, "maximum": 2**40 - 1},
                    "by": {"type": "string", "minLength": 1, "maxLength": alarm_ack.MAX_BY},
                    "gateway": HEX32,
                    "v": {"type": "integer", "enum": [alarm_ack.VERSION]},
                },
            },
            "key": HEX32,
            "signature": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
        },
    }
    stored = {
        "type": "object",
        "required": ["id", "gateway", "alarm", "log_size"],
        "properties": {
            "id": {"type": "integer"},
            "gateway": HEX32,
            "alarm": {"type": "string"},
            "log_size": {"type": "integer", "description": "The log size its key was checked at"},
        },
    }
    item = {
        "type": "object",
        "required": ["id", "signed_ack"],
        "properties": {"id": {"type": "integer"}, "signed_ack": signed},
    }
    listed = {
        "type": "object",
        "required": ["gateway", "acks"],
        "properties": {"gateway": HEX32, "acks": {"type": "array", "items": item}},
    }
    return {
        "/v1/alarm-acks": {
            "post": {
                "summary": "Relay a signed alarm acknowledgement to its gateway",
                "description": f"The body is at most {alarm_ack.MAX_BYTES} bytes: a signed ack "
                "(gateway/alarm_ack.py) whose key an owner authorised for the gateway's site "
                "(configuration op ack-key-add). Stored once, off the log; the gateway fetches "
                "it, checks it again and applies it.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": signed}},
                },
                "responses": {
                    "201": _json("Stored", stored),
                    "200": _json("Stored before: the same answer", stored),
                    "400": BAD,
                    "403": _problem("A bad signature, or a key not authorised for the site"),
                    "404": _problem("The gateway is not registered"),
                    "413": _problem(f"Body over {alarm_ack.MAX_BYTES} bytes"),
                },
            }
        },
        "/v1/gateways/{gateway}/alarm-acks": {
            "get": {
                "summary": "The signed acks relayed to a gateway, oldest first",
                "parameters": [
                    _path("gateway", HEX32, "The gateway's x-only public key, hex"),
                    _query("after", "Only acks with a larger id (default: from the first)"),
                    {
                        **_query("limit", "At most this many acks (default 100)"),
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                ],
                "responses": {"200": _json("Acks", listed), "400": BAD, "404": NOT_FOUND},
            }
        },
    }


def _gateway_lot_paths() -> dict[str, Any]:
    """GET /v1/gateways/{gateway}/lots (docs/protocol.md, "Lots of a gateway's boxes";
    cloud/services/gateway_lots.py), a read signed by the gateway (gateway/gateway_auth.py)."""
    profile = {
        "type": "object",
        "required": list(LOT_SIGNED_FIELDS),
        "properties": {name: {"type": "integer"} for name in LOT_SIGNED_FIELDS},
        "additionalProperties": False,
    }
    lot = {
        "type": "object",
        "required": ["gtin", "lot", "start", "end", "profile"],
        "properties": {
            "gtin": {"type": "string"},
            "lot": {"type": "string"},
            "start": {"type": "integer", "description": "ms (Unix)"},
            "end": {"type": ["integer", "null"], "description": "ms (Unix); null: open"},
            "profile": profile,
        },
    }
    answer = {
        "type": "object",
        "required": ["gateway", "site", "time", "boxes"],
        "properties": {
            "gateway": HEX32,
            "site": {"type": "string"},
            "time": {"type": "integer", "description": "the cloud's time of the answer, ms"},
            "boxes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["box", "lots"],
                    "properties": {"box": HEX32, "lots": {"type": "array", "items": lot}},
                },
            },
        },
    }

    def header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "required": True,
            "schema": schema,
            "description": description,
        }

    return {
        "/v1/gateways/{gateway}/lots": {
            "get": {
                "summary": "The lots a gateway's boxes are on, with their storage profiles",
                "description": "For the boxes registered at the gateway's site that are on a "
                "lot now or from a later start: each lot, its window and its storage profile "
                "(public, printed on the pack); nothing of holders, quantities or shipments. "
                "Only for the gateway itself: BIP-340 under its key over "
                f'tagged_hash("{gateway_auth.TAG.decode()}", challenge ‖ gateway key ‖ '
                '"GET " ‖ path), the challenge from POST /v1/auth/challenge (single use, '
                f"{auth.CHALLENGE_TTL_S} s).",
                "parameters": [
                    _path("gateway", HEX32, "The gateway's x-only public key, hex"),
                    header(gateway_auth.CHALLENGE_HEADER, HEX32, "The challenge, hex"),
                    header(
                        gateway_auth.SIGNATURE_HEADER,
                        {"type": "string", "pattern": "^[0-9a-f]{128}$"},
                        "The gateway's BIP-340 signature, hex",
                    ),
                ],
                "responses": {
                    "200": _json("The boxes on lots", answer),
                    "400": BAD,
                    "401": _problem(
                        "Unsigned, a signature that does not verify, or a challenge unknown, "
                        "expired or used"
                    ),
                    "403": _problem("The key is not a registered gateway"),
                },
            }
        },
    }


def _replay_get() -> dict[str, Any]:
    """GET /v1/tx: stored transaction bodies for a replay grant (cloud/services/replay.py)."""
    stored = {
        "type": "object",
        "required": ["index", "root_index", "canonical", "sig", "salt"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "root_index": {"type": "integer", "minimum": 0},
            "canonical": {"type": "string"},
            "sig": HEX,
            "salt": HEX32,
        },
    }
    page = {
        "type": "object",
        "required": ["transactions", "next"],
        "properties": {
            "transactions": {"type": "array", "items": stored},
            "next": {"type": ["integer", "null"]},
        },
    }
    return {
        "summary": "Stored transaction bodies, for a replay grant",
        "description": "Bearer token required (POST /v1/auth/token); its did must hold a "
        "replay grant (0x06 grant-add) for each contract in the page. `canonical`: the "
        "signed body (RFC 8785) as text; `salt`: its 0x03 commitment's salt; `next`: the "
        "`after` of the next page.",
        "parameters": [
            _query("after", "Log index to start after (absent: from the start)"),
            _query("limit", f"At most this many (1 to {replay.MAX_PAGE})", maximum=replay.MAX_PAGE),
        ],
        "responses": {
            "200": _json("A page of stored transactions", page),
            "400": BAD,
            "401": _problem("No token, or a bad, forged or expired one"),
            "403": _problem("The reader holds no replay grant for a contract in the page"),
        },
    }


def _auth_paths() -> dict[str, Any]:
    """POST /v1/auth/challenge and /v1/auth/token (docs/contracts.md §3, sign-in for reads;
    cloud/contracts/auth.py)."""
    issued = {
        "type": "object",
        "required": ["token", "did", "role", "expires", "type", "ttl"],
        "properties": {
            "token": {"type": "string"},
            "did": {"type": "string"},
            "role": {"type": "string"},
            "expires": {"type": "integer"},
            "type": {"const": "Bearer"},
            "ttl": {"type": "integer"},
        },
    }
    request = {
        "type": "object",
        "required": ["did", "challenge", "sig"],
        "properties": {"did": {"type": "string"}, "challenge": HEX32, "sig": HEX},
    }
    return {
        "/v1/auth/challenge": {
            "post": {
                "summary": "A challenge to sign in with",
                "description": f"{auth.CHALLENGE_BYTES} random bytes, hex, valid "
                f"{auth.CHALLENGE_TTL_S} s and usable once.",
                "responses": {
                    "201": _json(
                        "The challenge and when it expires (Unix s)",
                        {
                            "type": "object",
                            "required": ["challenge", "expires"],
                            "properties": {"challenge": HEX32, "expires": {"type": "integer"}},
                        },
                    )
                },
            }
        },
        "/v1/auth/token": {
            "post": {
                "summary": "Sign in: a bearer token for a signed challenge",
                "description": "`sig`: BIP-340 under the did:key's x-only key over "
                'tagged_hash("PharmaSync/auth/v1", challenge ‖ did). The token is valid '
                f"{auth.TOKEN_TTL_S} s and names the did and its role; send it as "
                "`Authorization: Bearer <token>`. Without one, a reader is the public.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request}},
                },
                "responses": {
                    "201": _json("The token", issued),
                    "400": BAD,
                    "401": _problem(
                        "The signature does not verify, or the challenge is "
                        "unknown, expired or used"
                    ),
                    "403": _problem("The did is no regulator and no active participant"),
                    "413": _problem("Body over 1024 bytes"),
                },
            }
        },
    }


# The cells of the access-matrix columns a read left out (docs/contracts.md §5): column ->
# "read: <stakeholder> × <column> = <value>".
WITHHELD = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "Column -> the read-matrix cell that kept it out, or reduced it",
}
BEARER_401 = _problem("A bad, forged or expired bearer token")
BEARER_403 = _problem("The bearer's did is no longer a participant")


def _read_paths() -> dict[str, Any]:
    """GET /v1/lots/{gtin}/{lot}/columns/{column}, /v1/participants[/{did}] and
    /v1/certificates (docs/contracts.md §5, reads;
    cloud/contracts/policy.py). A bearer token (POST /v1/auth/token) picks the reader's row
    of the read matrix; without one, the public's."""
    columns = {
        "type": "object",
        "description": "manufacturer_identity or entities_identity (did, role, name, "
        "region, licence), compliance_regulatory (status; since and reason in full)",
    }
    one = {
        "type": "object",
        "required": ["did", "columns", "withheld"],
        "properties": {"did": {"type": "string"}, "columns": columns, "withheld": WITHHELD},
    }
    directory = {
        "type": "object",
        "required": ["participants", "withheld"],
        "properties": {
            "participants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["did", "columns"],
                    "properties": {"did": {"type": "string"}, "columns": columns},
                },
            },
            "withheld": WITHHELD,
            "counts": {
                "type": "object",
                "description": "Where the entities' identity cell is global only: role -> "
                "region -> participants",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
            },
        },
    }
    certificates = {
        "type": "object",
        "required": ["subject", "certificates", "withheld"],
        "properties": {
            "subject": {"type": "string"},
            "certificates": {"type": "array", "items": {"type": "object"}},
            "withheld": WITHHELD,
        },
    }
    did = _path("did", {"type": "string", "maxLength": 200}, "Any did:key the participant had")
    subject = {
        "name": "subject",
        "in": "query",
        "required": True,
        "description": 'A participant\'s did:key, or "<GTIN-14>/<lot>"',
        "schema": {"type": "string", "maxLength": 100},
    }
    return {
        "/v1/lots/{gtin}/{lot}/columns/{column}": {
            "get": {
                "summary": "One column of a lot, as the read matrix shows it",
                "description": "The column's value as GET /v1/lots/{gtin}/{lot} gives it in "
                "`columns`; where the reader's cell withholds it, 403 `access` naming the cell "
                "(the public's too).",
                "parameters": [
                    *LOT_PATH,
                    _path(
                        "column",
                        {"enum": [c for c in access.COLUMNS if c != access.ENTITIES_IDENTITY]},
                        "An access-matrix column of a lot",
                    ),
                ],
                "responses": {
                    "200": _json(
                        "The column",
                        {
                            "type": "object",
                            "required": ["gtin", "lot", "column", "value"],
                            "properties": {
                                "gtin": {"type": "string"},
                                "lot": {"type": "string"},
                                "column": {"type": "string"},
                                "value": {},
                            },
                        },
                    ),
                    "400": BAD,
                    "401": BEARER_401,
                    "403": _problem(
                        "The reader's cell withholds the column (named), or the "
                        "bearer is no longer a participant"
                    ),
                    "404": _problem("The lot was never commissioned"),
                },
            }
        },
        "/v1/participants": {
            "get": {
                "summary": "Participants, as the read matrix shows them",
                "description": "Each participant whose identity column the reader reads "
                "(manufacturers: everyone; others: yes, or own only), and counts per role and "
                "region where the entities' identity cell is global only.",
                "responses": {
                    "200": _json("The directory", directory),
                    "401": BEARER_401,
                    "403": BEARER_403,
                },
            }
        },
        "/v1/participants/{did}": {
            "get": {
                "summary": "One participant, as the read matrix shows it",
                "description": "Its identity and compliance columns as the reader's cells "
                "allow; `withheld` names the others' cells.",
                "parameters": [did],
                "responses": {
                    "200": _json("The participant", one),
                    "400": BAD,
                    "401": BEARER_401,
                    "403": _problem(
                        "Every column withheld (the cells named), or the bearer "
                        "is no longer a participant"
                    ),
                    "404": _problem("No participant ever had this key"),
                },
            }
        },
        "/v1/certificates": {
            "get": {
                "summary": "A subject's certificates, as the read matrix shows them",
                "description": "In full where the reader's compliance cell is yes or it is "
                "the subject; else (restricted) validity facts: id, kind, valid_from, "
                "valid_until, revoked.",
                "parameters": [subject],
                "responses": {
                    "200": _json("The certificates", certificates),
                    "400": BAD,
                    "401": BEARER_401,
                    "403": BEARER_403,
                },
            }
        },
    }


def _contract_paths() -> dict[str, Any]:
    """POST /v1/tx, GET /v1/state and GET /v1/lots/{gtin}/{lot} (docs/contracts.md;
    docs/protocol.md, "Contract transaction v1" and "State tree")."""
    index = {"type": ["integer", "null"], "minimum": 0}
    head = {
        "type": "object",
        "required": ["root", "records", "covers", "index"],
        "properties": {
            "root": HEX32,
            "records": {"type": "integer", "minimum": 0},
            "covers": index,
            "index": index,
        },
    }
    proof = {
        "type": "object",
        "required": ["version", "leaf", "depth", "bitmap", "siblings"],
        "properties": {
            "version": {"type": "integer"},
            "leaf": {
                "type": ["object", "null"],
                "properties": {"key": HEX32, "value_hash": HEX32},
            },
            "depth": {"type": "integer"},
            "bitmap": HEX,
            "siblings": PROOF,
        },
    }
    record = {
        "type": "object",
        "required": ["value", "proof"],
        "properties": {"value": {"type": ["object", "null"]}, "proof": proof},
    }
    envelope = {
        "type": "object",
        "required": ["tx", "sig"],
        "properties": {
            "tx": {
                "type": "object",
                "required": ["v", "contract", "type", "signer", "time", "nonce", "args"],
                "properties": {
                    "v": {"type": "integer"},
                    "contract": {"type": "string"},
                    "type": {"type": "string"},
                    "signer": {"type": "string"},
                    "time": {"type": "integer"},
                    "nonce": {"type": "string"},
                    "args": {"type": "object"},
                },
            },
            "sig": HEX,
        },
    }
    applied: dict[str, Any] = {
        "type": "object",
        "required": list(APPLIED_FIELDS),
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "id": HEX32,
            "root": HEX32,
            "records": {"type": "integer", "minimum": 0},
            "root_index": {"type": "integer", "minimum": 0},
        },
    }
    return {
        "/v1/tx": {
            "get": _replay_get(),
            "post": {
                "summary": "Apply a signed contract transaction",
                "description": f"The body is at most {tx.MAX_ENVELOPE} bytes of bounded JSON "
                f"({tx.MAX_BULK_ENVELOPE} for a lots serialize, split or ship: pack serials): "
                '{"tx": body, "sig": BIP-340 signature as hex} (docs/protocol.md, "Contract '
                'transaction v1"). Applied: its 0x03 entry and the 0x04 state root after it are '
                "appended together; refused: nothing is written.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": envelope}},
                },
                "responses": {
                    "201": _json(
                        "Applied: its 0x03 entry's index, its id, the state after", applied
                    ),
                    "400": BAD,
                    "401": _problem("The signature does not verify under tx.signer"),
                    "403": _problem("Not an active participant, or the access cell is `no`"),
                    "409": _problem("A contract rule refuses it, or a replayed nonce"),
                    "413": _problem(
                        f"Body over {tx.MAX_ENVELOPE} bytes ({tx.MAX_BULK_ENVELOPE}: bulk types)"
                    ),
                },
            },
        },
        "/v1/tx/batch": {
            "post": {
                "summary": "Apply a batch of signed contract transactions, each on its own",
                "description": f"The body is a JSON array of 1 to {MAX_BATCH} envelopes as "
                "POST /v1/tx takes them (an entry that is not one is refused on its own), at "
                f"most {MAX_BATCH_BYTES} bytes, each envelope at most {tx.MAX_ENVELOPE} as "
                "canonical JSON. They are applied in their order, each all or nothing as POST "
                "/v1/tx applies it: a refused one leaves nothing and the others stay. "
                "`results` answers each in the same order: its 201 answer or its problem "
                "document (400, 401, 403, 409, 413 as POST /v1/tx would), each with its "
                "`status`.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_BATCH,
                                # any value: each entry is judged, and answered, on its own
                                "items": {},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        "Each envelope's answer, in order",
                        {
                            "type": "object",
                            "required": ["results"],
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "items": {
                                        "oneOf": [
                                            {
                                                "type": "object",
                                                "required": ["status", *APPLIED_FIELDS],
                                                "properties": {
                                                    "status": {"const": 201},
                                                    **applied["properties"],
                                                },
                                            },
                                            PROBLEM,
                                        ]
                                    },
                                }
                            },
                        },
                    ),
                    "400": BAD,
                    "413": _problem(f"Body over {MAX_BATCH_BYTES} bytes"),
                },
            },
        },
        "/v1/state": {
            "get": {
                "summary": "The latest contract state root",
                "description": "`covers`: the last entry the root covers (a 0x03, or a batch's "
                "0x01 whose readings changed the state); `index`: the 0x04 entry holding this "
                "root (both null before the first state root).",
                "responses": {"200": _json("The state root", head)},
            }
        },
        "/v1/lots/{gtin}/{lot}": {
            "get": {
                "summary": "A lot's public facts with state proofs",
                "description": "In `records`: its identity (`lot`), quality status "
                "(`quality`) and recall (`recall`), each null if absent, each with its proof "
                "against `state.root` (a public record's tree value is its canonical JSON). "
                "In `columns`: the lot's facts per access-matrix column as the reader's row "
                "allows (no token: the public's), `withheld` naming the cell of each column "
                "left out; private facts come without proofs.",
                "parameters": LOT_PATH,
                "responses": {
                    "200": _json(
                        "The lot's public records",
                        {
                            "type": "object",
                            "required": ["gtin", "lot", "state", "records"],
                            "properties": {
                                "gtin": {"type": "string"},
                                "lot": {"type": "string"},
                                "state": head,
                                "custody": {
                                    "type": "object",
                                    "description": "Only for a bearer the read policy "
                                    "allows (cloud/contracts/policy.py); private, no proof",
                                },
                                "columns": {
                                    "type": "object",
                                    "description": "The lot's facts by access-matrix column, "
                                    "each as the reader's cell allows (docs/contracts.md §5); "
                                    "absent for a lot never commissioned",
                                },
                                "withheld": WITHHELD,
                                "records": {
                                    "type": "object",
                                    "required": ["lot", "quality", "recall"],
                                    "properties": {
                                        "lot": record,
                                        "quality": record,
                                        "recall": record,
                                    },
                                },
                            },
                        },
                    ),
                    "400": BAD,
                    "401": BEARER_401,
                    "403": BEARER_403,
                },
            }
        },
    }


def _trace_and_feed_paths() -> dict[str, Any]:
    """GET /v1/lots/{gtin}/{lot}/trace (cloud/services/traces.py), GET /v1/feed and
    /v1/feed/stream (cloud/services/feeds.py); docs/contracts.md §5."""
    did = {"type": "string"}
    recall = {
        "type": ["object", "null"],
        "required": ["class", "since"],
        "properties": {"class": {"enum": ["I", "II", "III"]}, "since": {"type": "integer"}},
    }
    traced = {
        "type": "object",
        "required": ["lot", "parent", "status", "recall", "holders", "in_transit", "dispensed"],
        "properties": {
            "lot": {"type": "string"},
            "parent": {"type": ["string", "null"]},
            "status": {"enum": ["released", "quarantined", "rejected"]},
            "recall": recall,
            "holders": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["did", "role", "quantity"],
                    "properties": {"did": did, "role": did, "quantity": {"type": "integer"}},
                },
            },
            "in_transit": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["shipment", "sender", "receiver", "quantity", "leg"],
                    "properties": {
                        "shipment": {"type": "string"},
                        "sender": did,
                        "receiver": did,
                        "quantity": {"type": "integer"},
                        "leg": {"enum": [access.M_TO_D, access.D_TO_R, access.R_TO_P]},
                    },
                },
            },
            "dispensed": {"type": ["integer", "null"]},
        },
    }
    count = {"type": "integer", "minimum": 0}
    trace = {
        "type": "object",
        "required": ["gtin", "lot", "state", "view"],
        "properties": {
            "gtin": {"type": "string"},
            "lot": {"type": "string"},
            "state": {"type": "object"},
            "view": {"enum": ["flows", "global"]},
            "legs": {"type": "array", "items": {"type": "string"}},
            "lots": {"type": "array", "items": traced},
            "totals": {
                "type": "object",
                "properties": {
                    k: count for k in ("lots", "recalled", "held", "in_transit", "dispensed")
                },
            },
            "by_role_region": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["role", "region", "holders", "units", "in_transit", "holdings"],
                    "properties": {
                        "role": {"type": "string"},
                        "region": {"type": "string"},
                        **{k: count for k in ("holders", "units", "in_transit", "holdings")},
                    },
                },
            },
        },
    }
    event = {
        "type": "object",
        "required": ["id", "index", "tx", "event"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "index": {"type": "integer", "minimum": 0},
            "tx": {"type": "string"},
            "event": {"type": "object", "required": ["type"]},
        },
    }
    page = {
        "type": "object",
        "required": ["events", "next", "last"],
        "properties": {
            "events": {"type": "array", "items": event},
            "next": count,
            "last": count,
        },
    }
    no_token = _problem("No bearer token, or a bad, forged or expired one")
    not_participant = _problem("The bearer's did is no longer a regulator or participant")
    return {
        "/v1/lots/{gtin}/{lot}/trace": {
            "get": {
                "summary": "A lot's recall trace: every lot split from it, holders, quantities",
                "description": "View `flows` (a reader whose compliance cell is `yes`, or "
                "`restricted` and in the lot's custody chain): the lot and its descendants, "
                "parents first, with the holders, shipments in transit and dispenses of the "
                "legs in `legs` (the reader's flow cells that are `yes`). View `global` (the "
                "regulator): `totals` and `by_role_region`, no DID or lot number. Everyone "
                "else, the public included: 403 naming the read cell.",
                "parameters": [
                    _path("gtin", {"type": "string", "pattern": "^[0-9]{14}$"}, "GTIN-14"),
                    _path(
                        "lot", {"type": "string", "minLength": 1, "maxLength": 20}, "Lot (AI 10)"
                    ),
                ],
                "responses": {
                    "200": _json("The trace as the reader may see it", trace),
                    "400": BAD,
                    "401": no_token,
                    "403": _problem("`access`: the read cell that denies it; or `participant`"),
                    "404": _problem("`lot`: never commissioned"),
                },
            }
        },
        "/v1/feed": {
            "get": {
                "summary": "Your notification feed, a page at a time",
                "description": "Bearer token required: the reader's own feed (events the "
                "contracts raised for it, in log order). `id` is an event's position in the "
                "feed, from 1; `next` is the `after` of the next page, `last` the id of the "
                "feed's last event.",
                "parameters": [
                    _query("after", "Return the events after this id (default 0)"),
                    {
                        "name": "limit",
                        "in": "query",
                        "description": f"At most this many (default {DEFAULT_PAGE})",
                        "schema": {"type": "integer", "minimum": 1, "maximum": feeds.MAX_PAGE},
                    },
                ],
                "responses": {
                    "200": _json("A page of the feed", page),
                    "400": BAD,
                    "401": no_token,
                    "403": not_participant,
                },
            }
        },
        "/v1/feed/stream": {
            "get": {
                "summary": "Your notification feed as Server-Sent Events",
                "description": "Bearer token required. Each event is an SSE message with "
                "`id` (the event's id) and `data` (its JSON, as GET /v1/feed gives it), from "
                "after the id in the `Last-Event-ID` header (else the `after` parameter, else "
                "the start), then live; a `: heartbeat` comment when nothing happens. The "
                "stream ends when the token expires or the server shuts down.",
                "parameters": [
                    _query("after", "Without Last-Event-ID: start after this id (default 0)"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "The id of the last event the client saw",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": BAD,
                    "401": no_token,
                    "403": not_participant,
                },
            }
        },
    }


def _epcis_paths() -> dict[str, Any]:
    """EPCIS 2.0 (cloud/api/openapi_epcis.py; imported here, as it imports this module)."""
    from cloud.api.openapi_epcis import paths

    return paths()


def _lot_history_paths() -> dict[str, Any]:
    """GET /v1/lots/{gtin}/{lot}/history (cloud/services/lot_history.py)."""
    figures = {
        "type": "object",
        "description": "°C figures are null without valid readings; MKT time-weighted; "
        "relative humidity (%) null without valid readings",
        "properties": {
            "count": {"type": "integer"},
            "sensor_errors": {"type": "integer"},
            "min_c": {"type": ["number", "null"]},
            "max_c": {"type": ["number", "null"]},
            "mean_c": {"type": ["number", "null"]},
            "mkt_c": {"type": ["number", "null"]},
            "min_rh": {"type": ["number", "null"]},
            "max_rh": {"type": ["number", "null"]},
            "mean_rh": {"type": ["number", "null"]},
            "time_out_of_range_s": {"type": "integer"},
            "calibration_flagged": {
                "type": "integer",
                "description": "Readings at or after their box's calibration due date",
            },
        },
    }
    excursion = {
        "type": "object",
        "description": "high/low on one leg (its box where the leg's custody shows), or the "
        "lot's cumulative one; times in Unix seconds, end_s null while on",
        "properties": {
            "leg": {"type": "string"},
            "box": HEX32,
            "kind": {"enum": ["high", "low", "cumulative"]},
            "start_s": {"type": "integer"},
            "raised_s": {"type": "integer"},
            "end_s": {"type": ["integer", "null"]},
            "worst_cc": {"type": "integer"},
        },
    }
    gap = {
        "type": "object",
        "properties": {
            "leg": {"type": "string"},
            "start_s": {"type": "integer"},
            "end_s": {"type": "integer"},
            "final": {"type": "boolean", "description": "The leg is closed"},
        },
    }
    leg = {
        "type": "object",
        "description": "Where the reader reads the leg's flow (docs/contracts.md §4) also "
        "shipment, sender, receiver (DIDs) and boxes; otherwise named `leg 1`, `leg 2`, ... "
        "in start order",
        "properties": {
            "leg": {"type": "string"},
            "kind": {"enum": ["shipment", "storage"]},
            "start": {"type": "integer", "description": "ms"},
            "end": {"type": ["integer", "null"], "description": "ms; null while open"},
        },
    }
    leg_figures = {
        "allOf": [figures],
        "properties": {
            "leg": {"type": "string"},
            "start_s": {"type": "integer"},
            "end_s": {"type": ["integer", "null"]},
            "excursions": {"type": "array", "items": excursion},
            "gaps": {"type": "array", "items": gap},
        },
    }
    history = {
        "type": "object",
        "required": ["gtin", "lot", "quality", "state"],
        "properties": {
            "gtin": {"type": "string"},
            "lot": {"type": "string"},
            "quality": {"type": "object", "description": "The lot's quality record"},
            "state": {"type": "object", "description": "The state head it was read at"},
            "legs": {"type": "array", "items": leg},
            "coldchain": {
                "type": ["object", "null"],
                "description": "null for a lot no box was ever attached to",
                "properties": {
                    "overall": figures,
                    "legs": {"type": "array", "items": leg_figures},
                    "excursions": {"type": "array", "items": excursion},
                    "gaps": {"type": "array", "items": gap},
                    "verdict": {
                        "type": ["string", "null"],
                        "description": "Only when every leg's custody shows: why the cold "
                        "chain quarantines it",
                    },
                },
            },
        },
    }
    return {
        "/v1/lots/{gtin}/{lot}/history": {
            "get": {
                "summary": "A lot's legs and cold chain, from the aggregates",
                "description": "Per leg and overall min/max/mean, MKT, time out of range, "
                "excursions under the lot's profile, gaps and calibration flags, as the "
                "quality-status cell of the read matrix shows them to the bearer "
                "(docs/contracts.md §5): `yes`, or `if involved` in the lot's chain, see the "
                "cold chain, with who held each leg where the reader reads that leg's flow; "
                "the public (`global only`) gets the quality status alone.",
                "parameters": LOT_PATH,
                "responses": {
                    "200": _json("The lot's history", history),
                    "400": BAD,
                    "401": _problem("A bad, forged or expired bearer token"),
                    "403": _problem(
                        "The quality-status cell refuses the bearer (`no`, or `if involved` "
                        "outside the lot's chain), or its did is no longer a participant"
                    ),
                    "404": _problem("The lot was never commissioned"),
                },
            }
        }
    }


def _stock_paths() -> dict[str, Any]:
    """GET /v1/stock and /v1/stock/{gtin} (cloud/services/stock.py); docs/contracts.md §5,
    "Stock and shortage (as built)"."""
    count = {"type": "integer", "minimum": 0}
    classes = {
        "type": "object",
        "required": ["released", "quarantined", "rejected", "recalled"],
        "properties": {k: count for k in ("released", "quarantined", "rejected", "recalled")},
    }
    cover = {"type": ["number", "null"], "minimum": 0}
    figures = {
        "type": "object",
        "required": [
            "on_hand",
            "in_transit",
            "stock",
            "dispensed",
            "dispensed_30d",
            "days_of_cover",
        ],
        "properties": {
            "on_hand": {
                "type": "object",
                "required": ["manufacturer", "distributor", "retailer", "pharmacy"],
                "properties": {
                    r: classes for r in ("manufacturer", "distributor", "retailer", "pharmacy")
                },
            },
            "in_transit": classes,
            "stock": count,
            "dispensed": count,
            "dispensed_30d": {"type": "integer"},
            "days_of_cover": cover,
        },
    }
    own = {
        "type": "object",
        "required": [
            "on_hand",
            "in_transit_to_you",
            "in_transit_from_you",
            "stock",
            "dispensed_30d",
            "days_of_cover",
        ],
        "properties": {
            "on_hand": classes,
            "in_transit_to_you": classes,
            "in_transit_from_you": classes,
            "stock": count,
            "dispensed_30d": {"type": "integer"},
            "days_of_cover": cover,
        },
    }
    one_properties: dict[str, Any] = {
        "gtin": {"type": "string", "pattern": "^[0-9]{14}$"},
        "figures": figures,
        "own": own,
        "shortage": {
            "type": "object",
            "required": ["minimum", "below"],
            "properties": {
                "minimum": {"type": ["integer", "null"], "minimum": 1},
                "below": {"type": "boolean"},
            },
        },
        "withheld": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    one = {"type": "object", "required": ["gtin", "withheld"], "properties": one_properties}
    read = {"state": {"type": "object"}, "as_of": {"type": "integer"}}
    gtin = {"type": "string", "pattern": "^[0-9]{8,14}$"}
    no_token = _problem("A bad, forged or expired bearer token")
    denied = _problem("`access`: the read cell that denies it (the public); or `participant`")
    views = (
        "Figures per holder role (`figures`, no participant named) for a reader whose three "
        "leg cells are `yes` (manufacturer, distributor, operator team) or the regulator "
        "(global only); its own holdings and shipments (`own`) for a trading role; the "
        "regulator's minimum and whether stock is below it (`shortage`) for a compliance "
        "cell `yes`. `withheld` names the cells of what is left out; the public: 403. Stock "
        "counts units on hand or in transit of lots released and not recalled; days of "
        "cover = stock / (units dispensed in the 30 days up to `as_of` / 30), null when "
        "none were."
    )
    return {
        "/v1/stock": {
            "get": {
                "summary": "Stock of every GTIN you may see, a page at a time",
                "description": views + " Every GTIN for a reader of the figures, else the "
                "GTINs of the lots in whose custody the reader has been.",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "description": "Start after this GTIN (the `next` of a page)",
                        "schema": gtin,
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "At most this many GTINs (default 100)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _json(
                        "A page of GTINs",
                        {
                            "type": "object",
                            "required": ["state", "as_of", "gtins", "next"],
                            "properties": {
                                **read,
                                "gtins": {"type": "array", "items": one},
                                "next": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    "400": BAD,
                    "401": no_token,
                    "403": denied,
                },
            }
        },
        "/v1/stock/{gtin}": {
            "get": {
                "summary": "A GTIN's stock: on hand per role, in transit, days of cover",
                "description": views,
                "parameters": [_path("gtin", gtin, "GTIN-8, -12, -13 or -14")],
                "responses": {
                    "200": _json(
                        "The GTIN's stock as the reader may see it",
                        {
                            "type": "object",
                            "required": ["state", "as_of", "gtin", "withheld"],
                            "properties": {**read, **one_properties},
                        },
                    ),
                    "400": BAD,
                    "401": no_token,
                    "403": denied,
                    "404": _problem("`gtin`: no lot of it and no minimum"),
                },
            }
        },
    }


def _pack_paths() -> dict[str, Any]:
    """POST /v1/packs/verify (cloud/services/packs.py): the pharmacy counter's check."""
    text = {"type": "string"}
    nullable = {"type": ["string", "null"]}
    scan = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "gtin": {"type": "string", "pattern": "^[0-9]{8}$|^[0-9]{12,14}$"},
            "serial": {"type": "string", "minLength": 1, "maxLength": 20},
            "lot": {"type": "string", "minLength": 1, "maxLength": 20},
            "expiry": {"type": "string", "pattern": "^[0-9]{6}$"},
            "scan": {"type": "string", "minLength": 1, "maxLength": 512},
        },
    }
    pack = {
        "type": ["object", "null"],
        "properties": {
            "registered_lot": text,
            "lot": text,
            "expiry": {"type": "string", "format": "date"},
            "status": {"type": "string", "enum": ["active", *packs.DECOMMISSIONED]},
            "quality": text,
            "recall": nullable,
        },
    }
    answer = {
        "type": "object",
        "required": ["gtin", "serial", "verdict", "dispensable", "suspect", "reasons", "pack"],
        "properties": {
            "gtin": text,
            "serial": text,
            "scanned": {"type": "object"},
            "verdict": {"type": "string", "enum": list(pack_facts.VERDICTS)},
            "dispensable": {"type": "boolean"},
            "suspect": {"type": "boolean"},
            "reasons": {"type": "array", "items": text},
            "pack": pack,
            "decommission": {
                "type": ["object", "null"],
                "properties": {"status": text, "since": {"type": "integer"}, "by": text},
            },
            "withheld": {"type": "object", "additionalProperties": text},
            "state": {"type": "object"},
        },
    }
    return {
        "/v1/packs/verify": {
            "post": {
                "summary": "The pharmacy counter's check of a scanned pack",
                "description": "Bearer token required. The body is the scan split into its "
                "fields (gtin, serial; lot and expiry YYMMDD as the label carries them) or the "
                "raw `scan` as the scanner read it: a GS1 element string (GS separators, optional "
                "symbology identifier such as ]d2), its human-readable form (01)…(21)…, or a "
                "GS1 Digital Link URI; a scan the parser refuses is 400 `scan` naming the AI "
                "and why (check digit, unknown AI, serial too long or outside set 82, missing "
                "GS separator, no AI 21). The verdict, checked in this "
                "order: `unknown` (suspect: no such serial of this GTIN), `mismatch` (suspect: "
                "lot or expiry differ from the registration; AI 17 day 00 is the month's last "
                "day), `decommissioned`, `recalled`, `rejected`, `quarantined`, `expired`, "
                "else `authentic` (dispensable). Status is the lot the pack is in now (a split "
                "moves it). `decommission` (when and by whom) only where the reader's R→P "
                "read cell is yes, else `withheld` names the cell. Decommission, undo and "
                "suspect reports are transactions (POST /v1/tx, docs/contracts.md §6).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": scan}},
                },
                "responses": {
                    "200": _json("The verdict with its reasons and the pack's facts", answer),
                    "400": BAD,
                    "401": _problem("No bearer token, or a bad, forged or expired one"),
                    "403": _problem("The bearer's did is no longer a regulator or participant"),
                    "413": _problem(f"Body over {MAX_VERIFY_BYTES} bytes"),
                },
            }
        },
    }
