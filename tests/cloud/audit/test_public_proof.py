"""The public check's proof bundle checked offline (cloud/audit/public_check.py and
`pharmasync verify --public`): bundles a real ledger served (SQLite and PostgreSQL) verify
from the log's key and what was scanned, and every tampering is refused naming its step."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.audit import verify
from cloud.audit.public_check import PublicCheckError, Scanned, Step, verify_public
from cloud.contracts import lots, stateroot
from cloud.contracts.public_proof import ProvenRecord, PublicProof
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.note import Signer
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_auth import cloud  # noqa: F401  (the fixture)
from tests.cloud.api.test_packs import P, decommission
from tests.cloud.api.test_resolver import packs_moved_and_dispensed
from tests.cloud.api.test_traces import lots_tx
from tests.cloud.api.test_tx import GTIN, M, admit, applied, commission, send, serve

PROOF = "application/vnd.pharmasync.public-proof"
L1 = Scanned(GTIN, "L1")


async def bundle_of(app: Cloud, lot: str = "L1") -> PublicProof:
    url = app.url(f"/01/{GTIN}/10/{lot}")
    async with app.session.get(url, headers={"Accept": PROOF}) as r:
        assert r.status == 200
        return PublicProof.from_bytes(await r.read())


async def log_vkey(app: Cloud) -> str:
    async with app.session.get(app.url("/v1/log/vkey")) as r:
        return (await r.text()).strip()


def refused(bundle: PublicProof | bytes, key: str, scanned: Scanned = L1) -> PublicCheckError:
    data = bundle if isinstance(bundle, bytes) else bundle.to_bytes()
    with pytest.raises(PublicCheckError) as caught:
        verify_public(data, log_vkey=key, scanned=scanned)
    return caught.value


def with_record(bundle: PublicProof, code: int, **changes: Any) -> PublicProof:
    records = tuple(
        dataclasses.replace(r, **changes) if r.code == code else r for r in bundle.records
    )
    return dataclasses.replace(bundle, records=records)


@pytest.fixture
async def ledger(cloud: Cloud) -> Cloud:  # noqa: F811
    await applied(cloud, admit("M"))
    await applied(cloud, commission("L1", 10))
    await applied(cloud, commission("L2", 10))
    return cloud


async def test_a_bundle_verifies_and_says_as_of_its_first_checkpoint(ledger: Cloud) -> None:
    bundle, key = await bundle_of(ledger), await log_vkey(ledger)
    report = verify_public(bundle.to_bytes(), log_vkey=key, scanned=L1)
    assert report.size == bundle.index + 1  # the checkpoint first including the root
    assert report.facts["authentic"] and report.facts["verdict"] == "dispensable"
    assert [r.code for r in bundle.records] == [1, 2, 3, 12]
    # The JSON form is the same bundle; bytes and JSON round-trip exactly.
    assert PublicProof.from_json(json.loads(json.dumps(bundle.to_json()))) == bundle
    assert verify_public(json.dumps(bundle.to_json()).encode(), log_vkey=key, scanned=L1) == report
    # Asked again, the same bytes: the stamped checkpoint is kept, not re-made.
    assert (await bundle_of(ledger)).to_bytes() == bundle.to_bytes()
    assert len(bundle.to_bytes()) < 4096


async def test_it_stays_checkable_after_the_lot_changes(ledger: Cloud) -> None:
    before, key = await bundle_of(ledger), await log_vkey(ledger)
    await applied(ledger, lots_tx(M, "recall", {"lot": "L1", "class": "II", "reason": "label"}))
    after = await bundle_of(ledger)
    assert after.index > before.index
    old = verify_public(before.to_bytes(), log_vkey=key, scanned=L1)
    new = verify_public(after.to_bytes(), log_vkey=key, scanned=L1)
    assert old.facts["recalled"] is False and new.facts["recalled"] is True
    assert old.as_of <= new.as_of
    # A checkpoint of another size (the later one) in the earlier bundle is refused.
    mixed = dataclasses.replace(before, checkpoint=after.checkpoint)
    error = refused(mixed, key)
    assert error.step is Step.CHECKPOINT_SIZE and f"want {before.index + 1}" in error.detail


async def test_each_tampering_is_refused_with_its_reason(ledger: Cloud) -> None:
    bundle, key = await bundle_of(ledger), await log_vkey(ledger)
    lot_value = next(r.value for r in bundle.records if r.code == lots.LOT.code)
    assert lot_value is not None
    # A tampered value: another expiry in the lot record.
    forged = lot_value.replace(b'"2027-12-31"', b'"2029-12-31"')
    assert forged != lot_value
    error = refused(with_record(bundle, lots.LOT.code, value=forged), key)
    assert error.step is Step.RECORD_PROOF and error.detail.startswith("lot: value hash")
    # A recall hidden: the recall record's proof of absence replaced by nothing.
    fewer = dataclasses.replace(bundle, records=bundle.records[:2] + bundle.records[3:])
    assert refused(fewer, key).step is Step.RECORDS
    # A proof for another lot: scanned L2, or its identifiers rewritten to L2.
    assert refused(bundle, key, Scanned(GTIN, "L2")).step is Step.SCAN
    renamed = dataclasses.replace(bundle, lot="L2")
    error = refused(renamed, key, Scanned(GTIN, "L2"))
    assert error.step is Step.RECORD_PROOF  # the keys are recomputed from what was scanned
    # A checkpoint of another size, signed by the log but never stamped: no "as of" time.
    latest = await ledger.session.get(ledger.url("/v1/checkpoint"))
    unstamped = dataclasses.replace(bundle, checkpoint=await latest.text())
    assert refused(unstamped, key).step is Step.CHECKPOINT_TIME
    # A wrong key: the log's key pinned by the user is another's; or the note forged by it.
    other = Signer.generate(Checkpoint.parse(bundle.checkpoint.split("\n\n")[0] + "\n").origin)
    assert refused(bundle, other.verifier().to_vkey()).step is Step.CHECKPOINT_SIGNATURE
    text = bundle.checkpoint.split("\n\n")[0] + "\n"
    forged_note = sign_checkpoint(Checkpoint.parse(text), other)
    error = refused(dataclasses.replace(bundle, checkpoint=forged_note), key)
    assert error.step is Step.CHECKPOINT_SIGNATURE
    # The state-root entry or its inclusion altered.
    entry = stateroot.parse(bundle.entry)
    moved = dataclasses.replace(entry, records=entry.records + 1).encode()
    assert refused(dataclasses.replace(bundle, entry=moved), key).step is Step.LOG_INCLUSION
    not_root = b"\x03" + bundle.entry[1:]
    assert refused(dataclasses.replace(bundle, entry=not_root), key).step is Step.ENTRY
    if bundle.inclusion:
        bent = (bytes(32), *bundle.inclusion[1:])
        error = refused(dataclasses.replace(bundle, inclusion=bent), key)
        assert error.step is Step.LOG_INCLUSION
    # Cut bytes, a wrong version, trailing bytes: the shape.
    data = bundle.to_bytes()
    for broken in (data[:-1], b"\x04" + data[1:], data + b"\x00", b"{}"):
        assert refused(broken, key).step is Step.SHAPE


async def test_a_record_of_another_contract_is_not_a_bundle(ledger: Cloud) -> None:
    bundle = await bundle_of(ledger)
    with pytest.raises(ValueError, match="record participants/1"):
        ProvenRecord("participants", 1, None, bundle.records[0].proof)


async def test_pharmasync_verify_public(
    ledger: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, key = await bundle_of(ledger), await log_vkey(ledger)
    saved = tmp_path / "check.bin"
    saved.write_bytes(bundle.to_bytes())
    (tmp_path / "ledger.vkey").write_text(key + "\n")
    vkey = f"@{tmp_path / 'ledger.vkey'}"
    link = ledger.url(f"/01/{GTIN[1:]}/10/L1?17=271200")
    assert verify.main(["--public", str(saved), "--log-vkey", vkey, "--link", link]) == 0
    out = capsys.readouterr().out
    assert "✓ verified" in out and "as of 20" in out and "UTC" in out
    assert "as committed by the ledger" in out and "verdict: dispensable" in out
    assert "pack's expiry: 271200 = 2027-12-31: agrees" in out
    args = ["--public", str(saved), "--log-vkey", vkey, "--gtin", GTIN, "--lot", "L2"]
    assert verify.main(args) == 3
    assert "✗ scanned identifiers" in capsys.readouterr().out
    assert verify.main([*args[:4], "--lot", "L1"]) == 2  # a lot without its GTIN
    assert "--public needs" in capsys.readouterr().err
    bad = ["--public", str(saved), "--log-vkey", vkey, "--link", ledger.url("/01/123/10/L1")]
    assert verify.main(bad) == 2 and "AI 01" in capsys.readouterr().err
    assert verify.main(["--gtin", GTIN, "--cloud", "http://x"]) == 2  # --gtin without --public
    assert verify.main(["--public", str(saved), "--gtin", GTIN, "--lot", "L1"]) == 2
    assert "--log-vkey" in capsys.readouterr().err
    assert verify.main([*args[:6], "--lot", "L1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["checkpoint_size"] == bundle.index + 1


async def test_two_workers_asked_at_once_serve_one_stamped_checkpoint(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Workers on one PostgreSQL database stamp a size's checkpoint at most once: asked
    together for a root none has stamped, both answer the first writer's note, so a bundle
    is the same bytes whichever worker served it (and after a restart)."""
    data = tmp_path / "cloud"  # both workers read the one log key from here
    workers = [await serve(data, postgres_dsn) for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as http:
            for signed in (admit("M"), commission("L1", 10)):
                status, answer = await send(http, workers[0][1], signed)
                assert status == 201, answer

            async def get(url: str) -> bytes:
                link = f"{url}/01/{GTIN}/10/L1"
                async with http.get(link, headers={"Accept": PROOF}) as r:
                    assert r.status == 200
                    return await r.read()

            for n in range(3):  # a fresh root each round, asked of both workers at once
                first, second = await asyncio.gather(*(get(url) for _, url in workers))
                assert first == second
                await send(http, workers[0][1], commission(f"X{n}", 1))
            async with http.get(f"{workers[1][1]}/v1/log/vkey") as r:
                key = (await r.text()).strip()
        assert verify_public(first, log_vkey=key, scanned=L1).facts["authentic"]
    finally:
        for proc, _ in workers:
            proc.terminate()
            proc.wait(timeout=30)


# -- packs ---------------------------------------------------------------------------------


async def pack_bundle(app: Cloud, serial: str, lot: str = "L1") -> PublicProof:
    url = app.url(f"/01/{GTIN}/10/{lot}/21/{serial}")
    async with app.session.get(url, headers={"Accept": PROOF}) as r:
        assert r.status == 200, await r.text()
        return PublicProof.from_bytes(await r.read())


def pack_of(serial: str, lot: str | None = "L1") -> Scanned:
    return Scanned(GTIN, lot, serial)


def swap(bundle: PublicProof, code: int, other: PublicProof) -> PublicProof:
    """`bundle` with its record of type `code` taken from `other`."""
    taken = next(r for r in other.records if r.code == code)
    return dataclasses.replace(
        bundle, records=tuple(taken if r.code == code else r for r in bundle.records)
    )


async def test_a_pack_bundle_verifies_and_each_tampering_is_refused(regulated: Cloud) -> None:
    await packs_moved_and_dispensed(regulated)
    key = await log_vkey(regulated)
    active = await pack_bundle(regulated, "PK00007")
    report = verify_public(active.to_bytes(), log_vkey=key, scanned=pack_of("PK00007"))
    assert report.facts["serial"]["in_supply_chain"] is True
    assert [r.code for r in active.records] == [1, 2, 3, 12, 14, 15]
    assert active.pack is not None and active.pack.registration == 1
    assert PublicProof.from_json(json.loads(json.dumps(active.to_json()))) == active
    # Version 2 writes the checkpoint compactly (origin and signatures: size and root are
    # rebuilt from the entry's inclusion), and a bent inclusion rebuilds a note the log
    # never signed.
    data = active.to_bytes()
    origin = active.checkpoint.split("\n", 1)[0].encode()
    assert data.count(origin) == 1 and "\u2014".encode() not in data  # no signature line
    at = data.index(active.entry) + len(active.entry) + 1  # the first inclusion hash
    bent_bytes = data[:at] + bytes(32) + data[at + 32 :]
    error = refused(bent_bytes, key, pack_of("PK00007"))
    assert error.step is Step.CHECKPOINT_SIGNATURE, error
    # Another serial's proof: refused as scanned, and with its serial rewritten.
    other = await pack_bundle(regulated, "PK00008")
    assert refused(other, key, pack_of("PK00007")).step is Step.SCAN
    renamed = dataclasses.replace(other, serial="PK00007")
    assert refused(renamed, key, pack_of("PK00007")).step in (
        Step.RECORD_PROOF,
        Step.SERIAL_INCLUSION,
    )
    # The serial's inclusion: another index, another size, another path.
    assert active.pack is not None
    for bent in (
        dataclasses.replace(active.pack, index=(active.pack.index + 1) % active.pack.size),
        dataclasses.replace(active.pack, size=active.pack.size - 1),
        dataclasses.replace(active.pack, path=(bytes(32), *active.pack.path[1:])),
    ):
        error = refused(dataclasses.replace(active, pack=bent), key, pack_of("PK00007"))
        assert error.step is Step.SERIAL_INCLUSION, error
    # A wrong registration: the serial's in registration 1, not 2 (its key is another).
    wrong = dataclasses.replace(active.pack, registration=2)
    error = refused(dataclasses.replace(active, pack=wrong), key, pack_of("PK00007"))
    assert error.step is Step.RECORD_PROOF and error.detail.startswith("registration")
    # The registration or the pack record left out: the records a pack needs.
    fewer = dataclasses.replace(active, records=active.records[:-1])
    assert refused(fewer, key, pack_of("PK00007")).step is Step.RECORDS
    # Dispensed: the pack record hidden (claimed absent, as the earlier bundle said).
    await applied(regulated, decommission(P, "PK00007"))
    dispensed = await pack_bundle(regulated, "PK00007")
    hidden = swap(dispensed, 15, active)
    error = refused(hidden, key, pack_of("PK00007"))
    assert error.step is Step.RECORD_PROOF and error.detail.startswith("pack")
    hidden = with_record(dispensed, 15, value=None)
    assert refused(hidden, key, pack_of("PK00007")).step in (Step.SHAPE, Step.RECORD_PROOF)
    # ... while the earlier bundle still verifies, saying what was true then.
    again = verify_public(active.to_bytes(), log_vkey=key, scanned=pack_of("PK00007"))
    assert again == report
    # A moved pack answered with its parent lot's records (L1 released, C2 recalled).
    moved = await pack_bundle(regulated, "PK00052")
    fine = verify_public(moved.to_bytes(), log_vkey=key, scanned=pack_of("PK00052"))
    assert fine.facts["recalled"] is True and fine.facts["serial"]["lot"] == "C2"
    parent = await pack_bundle(regulated, "PK00009")
    for code in (1, 2, 3, 12):
        moved = swap(moved, code, parent)
    error = refused(moved, key, pack_of("PK00052"))
    assert error.step is Step.RECORD_PROOF and error.detail.startswith("lot")
    # ... or with its pack record claimed absent too (another serial's absence proof).
    error = refused(swap(moved, 15, parent), key, pack_of("PK00052"))
    assert error.step is Step.RECORD_PROOF


async def test_pharmasync_verify_public_of_a_pack(
    regulated: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await packs_moved_and_dispensed(regulated)
    saved = tmp_path / "pack.bin"
    saved.write_bytes((await pack_bundle(regulated, "PK00052")).to_bytes())
    (tmp_path / "ledger.vkey").write_text(await log_vkey(regulated) + "\n")
    vkey = f"@{tmp_path / 'ledger.vkey'}"
    link = regulated.url(f"/01/{GTIN}/10/L1/21/PK00052?17=271200")
    assert verify.main(["--public", str(saved), "--log-vkey", vkey, "--link", link]) == 0
    out = capsys.readouterr().out
    assert "✓ verified" in out and "serial PK00052" in out and "as of 20" in out
    assert "registered in lot L1" in out and "in the supply chain (active)" in out
    assert "now in lot C2" in out and "recall: class II" in out
    args = ["--public", str(saved), "--log-vkey", vkey, "--gtin", GTIN, "--serial", "PK00053"]
    assert verify.main(args) == 3  # another serial's bundle
    assert "✗ scanned identifiers" in capsys.readouterr().out
    assert verify.main([*args[:6], "--serial", "PK00052", "--json"]) == 0  # no lot: its own
    report = json.loads(capsys.readouterr().out)
    assert report["facts"]["serial"]["lot"] == "C2"


async def test_a_bundle_downgraded_to_plain_keys_cannot_prove_a_lot_absent(
    ledger: Cloud,
) -> None:
    """Since grouped keys every plain record key is absent from the state tree, so a bundle
    rewritten as version 2 (JSON 1) with honest proofs of absence at the plain keys, under
    the ledger's latest signed root, would say a registered lot is not registered, "proven
    absent" as of today. A plain-key bundle is refused unless it proves its lot present."""
    from cloud.api.state import CONTRACTS
    from cloud.contracts.statetree_hash import record_key

    bundle, key = await bundle_of(ledger), await log_vkey(ledger)
    state = ledger.server.app[CONTRACTS].state
    state.flush()
    assert state.tree.root == stateroot.parse(bundle.entry).root
    plain = tuple(
        dataclasses.replace(
            r, value=None, proof=state.tree.prove(record_key(r.contract, r.code, GTIN, "L1"))
        )
        for r in bundle.records
    )
    downgraded = dataclasses.replace(bundle, records=plain, grouped=False)
    for data in (downgraded.to_bytes(), json.dumps(downgraded.to_json()).encode()):
        error = refused(data, key)
        assert error.step is Step.RECORD_PROOF, error
        assert "plain keys" in error.detail
