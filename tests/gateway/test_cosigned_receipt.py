"""gateway/cosigned_receipt.py: a cosigned receipt built offline from a small log (real
Ed25519 log and witness keys, real RFC 6962 proofs from gateway/merkle.py) checks, and each
kind of tampering fails at its own named step; so does the golden vector
(tests/vectors/make_cosigned_receipt.py builds it without gateway/).
tests/cloud/api/test_receipts.py checks the ones a real cloud serves;
tests/cloud/audit/test_verify_receipt.py the command that checks files."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway import cosigned_receipt, merkle
from gateway.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    sign_checkpoint,
)
from gateway.cosigned_receipt import ReceiptError, check, parse
from gateway.note import Signer, Verifier
from tests.cloud.api.test_app import chain
from tests.conftest import GOLDEN

LOG = Signer.generate("example.org/ledger")
WITNESS = CosignatureSigner.generate("regulator.example/witness")
OTHER = CosignatureSigner.generate("auditor.example/witness")
INDEX, SIZE = 2, 6  # the batch's log entry, and the size the witnesses cosigned


def build(witnesses: tuple[CosignatureSigner, ...] = (WITNESS,)) -> dict[str, Any]:
    """A log of SIZE entries whose entry INDEX is batch 0's header, and its cosigned
    receipt: the receipt's checkpoint of size INDEX + 1, the cosigned one of SIZE."""
    header, _ = chain(1, 2)[0]
    entry = bytes([cosigned_receipt.ENTRY_BATCH]) + header.encode()
    entries = [bytes([0x02, i]) for i in range(SIZE)]
    entries[INDEX] = entry
    first = sign_checkpoint(Checkpoint(LOG.name, INDEX + 1, merkle.root(entries[: INDEX + 1])), LOG)
    text = Checkpoint(LOG.name, SIZE, merkle.root(entries)).to_text()
    later = sign_checkpoint(Checkpoint.parse(text), LOG)
    later += "".join(w.cosign(text, 1_767_225_600) for w in witnesses)
    receipt = {
        "gateway": header.gateway_key.hex(),
        "seq": header.seq,
        "header_hash": header.hash().hex(),
        "log_index": INDEX,
        "checkpoint": first,
    }
    return {
        "receipt": receipt,
        "cosigned": {
            "entry": entry.hex(),
            "size": SIZE,
            "checkpoint": later,
            "inclusion": [h.hex() for h in merkle.inclusion_proof(entries, INDEX)],
            "consistency": [h.hex() for h in merkle.consistency_proof(entries, INDEX + 1)],
        },
    }


def test_a_cosigned_receipt_checks_and_round_trips() -> None:
    doc = build((WITNESS, OTHER))
    parsed = parse(doc)
    assert parsed.to_json() == doc
    checked = check(
        parsed,
        log_key=LOG.verifier(),
        witnesses=[WITNESS.verifier(), OTHER.verifier()],
        min_cosignatures=2,
    )
    assert (checked.log_index, checked.size, checked.cosignatures) == (INDEX, SIZE, 2)
    assert checked.witnesses == (WITNESS.name, OTHER.name)
    # Without witness keys (a gateway that pins none) the other keys' lines are counted.
    assert check(parsed, log_key=LOG.verifier(), min_cosignatures=2).cosignatures == 2
    assert check(parsed, log_key=None, min_cosignatures=2).cosignatures == 2


def _flip(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


def _tamper_inclusion(doc: dict[str, Any]) -> None:
    doc["cosigned"]["inclusion"][0] = _flip(doc["cosigned"]["inclusion"][0])


def _tamper_consistency(doc: dict[str, Any]) -> None:
    doc["cosigned"]["consistency"][-1] = _flip(doc["cosigned"]["consistency"][-1])


def _inconsistent_receipt(doc: dict[str, Any]) -> None:
    # A receipt checkpoint of the right size, signed by the log, over another history.
    other = Checkpoint(LOG.name, INDEX + 1, bytes(32))
    doc["receipt"]["checkpoint"] = sign_checkpoint(other, LOG)


def _forged_cosigned(doc: dict[str, Any]) -> None:
    doc["cosigned"]["checkpoint"] = doc["cosigned"]["checkpoint"].replace(
        f"\n{SIZE}\n", f"\n{SIZE + 1}\n", 1
    )


def _other_batch(doc: dict[str, Any]) -> None:
    doc["receipt"]["seq"] = 1


def _other_entry_kind(doc: dict[str, Any]) -> None:
    doc["cosigned"]["entry"] = "05" + doc["cosigned"]["entry"][2:]


def _wrong_size(doc: dict[str, Any]) -> None:
    doc["cosigned"]["size"] = SIZE + 1


def _bad_hex(doc: dict[str, Any]) -> None:
    doc["cosigned"]["inclusion"] = ["zz"]


@pytest.mark.parametrize(
    ("tamper", "step", "words"),
    [
        (_tamper_inclusion, "inclusion", "root mismatch"),
        (_tamper_consistency, "consistency", "root mismatch"),
        (_inconsistent_receipt, "consistency", "old root mismatch"),
        (_forged_cosigned, "cosigned checkpoint", ""),
        (_other_batch, "entry", "want"),
        (_other_entry_kind, "entry", "kind: got 0x05, want 0x01"),
        (_wrong_size, "cosigned checkpoint", f"size: got {SIZE}, want {SIZE + 1}"),
        (_bad_hex, "shape", "inclusion[0]"),
    ],
)
def test_tampering_fails_at_its_step(tamper: Any, step: str, words: str) -> None:
    doc = copy.deepcopy(build())
    tamper(doc)
    with pytest.raises(ReceiptError) as raised:
        check(parse(doc), log_key=LOG.verifier(), witnesses=[WITNESS.verifier()])
    assert raised.value.step == step and words in raised.value.detail, raised.value


def test_too_few_or_unknown_witnesses_fail_at_cosignatures() -> None:
    parsed = parse(build())
    with pytest.raises(ReceiptError, match="cosignatures: got 1 of the given witnesses, want 2"):
        check(parsed, log_key=LOG.verifier(), witnesses=[WITNESS.verifier()], min_cosignatures=2)
    with pytest.raises(ReceiptError, match="cosignatures: got 0 of the given witnesses, want 1"):
        check(parsed, log_key=LOG.verifier(), witnesses=[OTHER.verifier()])


def test_a_bad_line_under_a_known_witness_key_fails() -> None:
    doc = build()
    note = doc["cosigned"]["checkpoint"]
    head, _, last = note[:-1].rpartition("\n")
    name, _, b64 = last.rpartition(" ")
    forged = b64[:-6] + ("AAAAA=" if b64[-6:] != "AAAAA=" else "BBBBB=")
    doc["cosigned"]["checkpoint"] = f"{head}\n{name} {forged}\n"
    with pytest.raises(ReceiptError) as raised:
        check(parse(doc), log_key=LOG.verifier(), witnesses=[WITNESS.verifier()])
    assert raised.value.step == "cosignatures" and WITNESS.name in raised.value.detail


def test_the_wrong_log_key_fails_at_the_receipt_checkpoint() -> None:
    with pytest.raises(ReceiptError) as raised:
        check(parse(build()), log_key=Signer.generate(LOG.name).verifier())
    assert raised.value.step == "receipt checkpoint"


GOLDEN_FILE = GOLDEN / "cosigned-receipt-v1.json"


def test_the_golden_vector_checks_and_its_tampered_copies_fail_at_their_step() -> None:
    golden = json.loads(GOLDEN_FILE.read_text())
    log_key = Verifier.parse(golden["log_vkey"])
    witness = CosignatureVerifier.parse(golden["witness_vkey"])
    parsed = parse(golden["valid"])
    assert parsed.to_json() == golden["valid"]  # the format, field for field
    checked = check(parsed, log_key=log_key, witnesses=[witness])
    assert (checked.log_index, checked.size, checked.witnesses) == (2, 7, (witness.name,))
    for case in golden["invalid"]:
        with pytest.raises(ReceiptError) as raised:
            check(parse(case["receipt"]), log_key=log_key, witnesses=[witness])
        assert raised.value.step == case["step"], case["why"]
    with pytest.raises(ReceiptError, match="cosignatures: got 1 of the given witnesses, want 2"):
        check(parsed, log_key=log_key, witnesses=[witness], min_cosignatures=2)
