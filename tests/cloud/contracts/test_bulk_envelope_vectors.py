"""cloud/contracts/tx.py reproduces tests/vectors/bulk-envelope-v1.json, made from
docs/protocol.md ("The envelope (HTTP body)") by tests/vectors/make_golden.py with rfc8785,
hashlib and coincurve: a bulk type (lots serialize, split) is read up to 4,194,304 bytes on
the wire, every other type up to 65,536, one byte over either is 413 json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cloud.contracts import tx
from gateway import jsonbound

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "bulk-envelope-v1.json").read_text())


def wire_of(case: dict[str, Any]) -> bytes:
    """The case's bytes on the wire: given in full, or rebuilt from the recipe (the 100,000
    serials PS + 18 digits, RFC 8785 as the canonical body is), then padded with spaces."""
    if "wire" in case:
        data = case["wire"].encode()
    else:
        assert case["type"] == "serialize"
        body = {
            "v": 1,
            "contract": "lots",
            "type": "serialize",
            "signer": VECTORS["signer"],
            "time": 1793620800000,
            "nonce": case["nonce"],
            "args": {
                "gtin": "09506000134352",
                "lot": "BULK1",
                "serials": [f"PS{i:018d}" for i in range(100_000)],
            },
        }
        # RFC 8785 of ASCII strings and small integers: sorted keys, no spaces
        envelope = {"tx": body, "sig": case["sig"]}
        data = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    pad = case.get("padded_with_spaces_to")
    return data if pad is None else data + b" " * (pad - len(data))


@pytest.mark.parametrize("case", VECTORS["envelopes"], ids=lambda c: c["case"])
def test_envelopes_are_read_or_refused_as_the_vectors_say(case: dict[str, Any]) -> None:
    data = wire_of(case)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        case["wire_bytes"],
        case["wire_sha256"],
    )
    refused = case["refused"]
    if refused is not None:
        with pytest.raises(jsonbound.JsonError) as caught:
            tx.parse_envelope(data)
        assert (caught.value.status, caught.value.reason) == (refused["status"], refused["reason"])
        return
    signed = tx.parse_envelope(data)  # the signature verifies over the canonical bytes
    assert hashlib.sha256(signed.body.canonical).hexdigest() == case["canonical_sha256"]
    assert signed.sig.hex() == case["sig"]
    assert signed.id == case["id"]
    assert tx.max_envelope("lots", case["type"]) >= len(data)


def test_the_vectors_sit_on_both_limits() -> None:
    sizes = {c["case"]: c["wire_bytes"] for c in VECTORS["envelopes"]}
    assert tx.MAX_BULK_ENVELOPE in sizes.values() and tx.MAX_BULK_ENVELOPE + 1 in sizes.values()
    assert tx.MAX_ENVELOPE in sizes.values() and tx.MAX_ENVELOPE + 1 in sizes.values()
