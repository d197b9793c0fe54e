"""`pharmasync packs serialize|verify|decommission|undo`, run as a user runs them against a
real `pharmasync cloud serve` with keys from `pharmasync cloud keygen`: the maker registers
serials from a file and generated ones, the pharmacy verifies a pack, dispenses it, is
refused a second time (the command files the suspect report, the maker's feed shows it),
and undoes its dispense; malformed serials exit 2 before anything is sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cloud.test_lots_cli import GTIN, TRADERS, User, ledger

PARTIES = (*TRADERS, ("pharmacy", "pharmacy"))


@pytest.fixture
async def user(tmp_path: Path) -> AsyncIterator[User]:
    async with ledger(tmp_path, PARTIES) as u:
        lot = ("--gtin", GTIN, "--lot", "L1")
        await u.ok("lots", "commission", *lot, "--expiry", "271231", "--quantity", "200",
                   "--key", "maker.key")  # fmt: skip
        for sender, receiver, shipment in (("maker", "wholesaler", "S1"),
                                           ("wholesaler", "retailer", "S2"),
                                           ("retailer", "pharmacy", "S3")):  # fmt: skip
            await u.ok("lots", "ship", *lot, "--shipment", shipment, "--to", f"@{receiver}.pub",
                       "--quantity", "10", "--key", f"{sender}.key")  # fmt: skip
            await u.ok("lots", "receive", "--shipment", shipment, "--quantity", "10",
                       "--key", f"{receiver}.key")  # fmt: skip
        yield u


async def test_serialize_verify_dispense_twice_and_undo(user: User) -> None:
    (user.folder / "serials.txt").write_text("FILE-1\n\nFILE-2\n")
    await user.ok("packs", "serialize", "--gtin", GTIN, "--lot", "L1", "--serials", "serials.txt",
                  "--key", "maker.key")  # fmt: skip
    await user.ok("packs", "serialize", "--gtin", GTIN, "--lot", "L1", "--count", "100",
                  "--prefix", "PK", "--key", "maker.key")  # fmt: skip
    pack = ("--gtin", GTIN, "--serial", "PK0000007")
    out = await user.ok("packs", "verify", *pack, "--lot", "L1", "--expiry", "271231",
                        "--key", "pharmacy.key", "--json")  # fmt: skip
    assert json.loads(out)["verdict"] == "authentic"
    place = ("--place", "Apotheke am Markt, Berlin")
    await user.ok("packs", "decommission", *pack, *place, "--key", "pharmacy.key")
    code, out, err = await user.run("packs", "decommission", *pack, *place, "--lot", "L1",
                                    "--key", "pharmacy.key")  # fmt: skip
    assert code == 1 and "decommissioned" in err and "suspect report" in err
    assert "lots/suspect" in out  # the report was applied
    feed = await user.ok("feed", "--key", "maker.key", "--json")
    assert "Apotheke am Markt, Berlin" in feed and '"suspect"' in feed
    out = await user.ok("packs", "verify", *pack, "--key", "pharmacy.key")
    assert "decommissioned" in out and "dispensable: no" in out
    await user.ok("packs", "undo", *pack, "--key", "pharmacy.key")
    out = await user.ok("packs", "verify", *pack, "--key", "pharmacy.key")
    assert "authentic" in out
    code, out, err = await user.run("packs", "decommission", "--gtin", GTIN, "--serial", "FAKE",
                                    *place, "--key", "pharmacy.key")  # fmt: skip
    assert code == 1 and "serial" in err and "lots/suspect" in out
    # a split of a serialized lot names each child's packs (lots split --serials)
    await user.ok("lots", "ship", "--gtin", GTIN, "--lot", "L1", "--shipment", "S9", "--to",
                  "@wholesaler.pub", "--quantity", "4", "--key", "maker.key")  # fmt: skip
    await user.ok("lots", "receive", "--shipment", "S9", "--quantity", "4",
                  "--key", "wholesaler.key")  # fmt: skip
    (user.folder / "c1.txt").write_text("PK0000050\nPK0000051\n")
    (user.folder / "c2.txt").write_text("PK0000052\nPK0000053\n")
    split = ("lots", "split", "--gtin", GTIN, "--lot", "L1", "--child", "C1:2", "--child", "C2:2")
    code, _, err = await user.run(*split, "--key", "wholesaler.key")
    assert code == 1 and "args.serials" in err
    await user.ok(*split, "--serials", "C1=c1.txt", "--serials", "C2=c2.txt",
                  "--key", "wholesaler.key")  # fmt: skip
    out = await user.ok("packs", "verify", "--gtin", GTIN, "--serial", "PK0000052",
                        "--lot", "L1", "--key", "pharmacy.key", "--json")  # fmt: skip
    assert json.loads(out)["pack"]["lot"] == "C2"


async def test_bad_serials_exit_2_and_refusals_exit_1(user: User) -> None:
    (user.folder / "bad.txt").write_text("GOOD\nnot ok\n")
    code, _, err = await user.run("packs", "serialize", "--gtin", GTIN, "--lot", "L1",
                                  "--serials", "bad.txt", "--key", "maker.key")  # fmt: skip
    assert code == 2 and "AI 21" in err
    code, _, err = await user.run("packs", "serialize", "--gtin", GTIN, "--lot", "L1",
                                  "--count", "5", "--key", "wholesaler.key")  # fmt: skip
    assert code == 1 and "access" in err
    code, _, err = await user.run("packs", "undo", "--gtin", GTIN, "--serial", "PK0000001",
                                  "--key", "pharmacy.key")  # fmt: skip
    assert code == 1 and "serial" in err


async def test_verify_and_decommission_by_scan(user: User) -> None:
    await user.ok("packs", "serialize", "--gtin", GTIN, "--lot", "L1", "--count", "20",
                  "--prefix", "PK", "--key", "maker.key")  # fmt: skip
    raw = f"]d2\x1d01{GTIN}1727123110L1\x1d21PK0000003"  # as a DataMatrix scanner sends it
    out = await user.ok("packs", "verify", "--scan", raw, "--key", "pharmacy.key", "--json")
    answer = json.loads(out)
    assert (answer["serial"], answer["verdict"], answer["scanned"]["raw"]) == (
        "PK0000003",
        "authentic",
        raw,
    )
    link = f"https://id.gs1.org/01/{GTIN}/10/L1/21/PK0000003?17=271231"
    place = ("--place", "Apotheke am Markt, Berlin")
    await user.ok("packs", "decommission", "--scan", link, *place, "--key", "pharmacy.key")
    out = await user.ok("packs", "verify", "--scan", f"(01){GTIN}(21)PK0000003",
                        "--key", "pharmacy.key")  # fmt: skip
    assert "decommissioned" in out and "dispensable: no" in out
    # a second dispense by scan is refused and reported with the scan's lot
    code, out, err = await user.run("packs", "decommission", "--scan", raw, *place,
                                    "--key", "pharmacy.key")  # fmt: skip
    assert code == 1 and "suspect report" in err and "lots/suspect" in out
    # bad scans: the server refuses a verify naming the AI (exit 1); a decommission's scan is
    # refused before anything is sent (exit 2); fields beside a scan must agree
    code, _, err = await user.run("packs", "verify", "--scan", f"(01){GTIN[:-1]}3(21)PK0000004",
                                  "--key", "pharmacy.key")  # fmt: skip
    assert code == 1 and "AI 01" in err and "check digit" in err
    for bad, word in ((f"01{GTIN}21{'S' * 21}", "AI 21"), (f"(01){GTIN}(99)1(21)X", "AI 99")):
        code, _, err = await user.run("packs", "decommission", "--scan", bad, *place,
                                      "--key", "pharmacy.key")  # fmt: skip
        assert code == 2 and word in err, err
    code, _, err = await user.run("packs", "decommission", "--scan", link, "--serial", "PK9",
                                  *place, "--key", "pharmacy.key")  # fmt: skip
    assert code == 2 and "the scan says" in err
    code, _, err = await user.run("packs", "verify", "--gtin", GTIN, "--key", "pharmacy.key")
    assert code == 2 and "--scan" in err


async def test_a_shipment_names_its_packs_and_its_pallet(user: User) -> None:
    """`lots ship --serials FILE --sscc N`: the maker ships named packs; the wholesaler's
    EPCIS export shows their packing in the pallet and, once received, their unpacking."""
    (user.folder / "serials.txt").write_text("PK-1\nPK-2\n\nPK-3\n")
    lot = ("--gtin", GTIN, "--lot", "L1")
    await user.ok("packs", "serialize", *lot, "--serials", "serials.txt", "--key", "maker.key")
    ship = (*lot, "--shipment", "P1", "--to", "@wholesaler.pub", "--quantity", "3",
            "--serials", "serials.txt")  # fmt: skip
    code, _, err = await user.run("lots", "ship", *ship, "--sscc", "106141411234567890",
                                  "--key", "maker.key")  # fmt: skip
    assert code == 1 and "args.sscc" in err and "check digit 7" in err  # nothing applied
    await user.ok("lots", "ship", *ship, "--sscc", "106141411234567897", "--key", "maker.key")
    await user.ok("lots", "receive", "--shipment", "P1", "--quantity", "3",
                  "--key", "wholesaler.key")  # fmt: skip
    out = await user.ok("lots", "epcis", GTIN, "L1", "--key", "wholesaler.key")
    events = json.loads(out)["epcisBody"]["eventList"]
    packing = [e for e in events if e["type"] == "AggregationEvent"]
    assert [e["action"] for e in packing] == ["ADD", "DELETE"]
    assert packing[0]["parentID"] == "https://id.gs1.org/00/106141411234567897"
    assert packing[0]["childEPCs"][0] == f"https://id.gs1.org/01/{GTIN}/21/PK-1"
    (user.folder / "fake.txt").write_text("PK-1\nNOPE\n")
    code, _, err = await user.run("lots", "ship", *lot, "--shipment", "P2", "--to",
                                  "@wholesaler.pub", "--quantity", "2", "--serials", "fake.txt",
                                  "--key", "maker.key")  # fmt: skip
    assert code == 1 and "'NOPE'" in err and "not registered" in err
    code, _, err = await user.run("lots", "ship", *lot, "--shipment", "P3", "--to",
                                  "@wholesaler.pub", "--quantity", "2", "--sscc",
                                  "106141411234567897", "--key", "maker.key")  # fmt: skip
    assert code == 2 and "--serials" in err
    code, _, err = await user.run("lots", "ship", *lot, "--shipment", "P4", "--to",
                                  "@wholesaler.pub", "--quantity", "2", "--serials",
                                  "missing.txt", "--key", "maker.key")  # fmt: skip
    assert code == 2 and "cannot read serials from missing.txt" in err


async def test_epcis_names_packs_by_epc_urn_once_the_maker_declared_its_prefix(
    user: User,
) -> None:
    """`lots epcis --epc-format urn`: EPC URNs only where the manufacturer declared its GS1
    company prefix (`lots gs1-prefix`); before that, and by default, Digital Link URIs."""
    (user.folder / "serials.txt").write_text("PK-1\n")
    lot = ("--gtin", GTIN, "--lot", "L1")
    await user.ok("packs", "serialize", *lot, "--serials", "serials.txt", "--key", "maker.key")
    export = ("lots", "epcis", GTIN, "L1", "--key", "maker.key")

    def epcs(out: str) -> list[str]:
        events = json.loads(out)["epcisBody"]["eventList"]
        return [epc for e in events for epc in e.get("epcList", [])]

    assert epcs(await user.ok(*export, "--epc-format", "urn")) == [
        f"https://id.gs1.org/01/{GTIN}/21/PK-1"  # no prefix declared: stays a Digital Link
    ]
    code, _, err = await user.run("lots", "gs1-prefix", "--prefix", "9506000",
                                  "--key", "wholesaler.key")  # fmt: skip
    assert code == 1 and "access" in err  # only a manufacturer declares its prefixes
    await user.ok("lots", "gs1-prefix", "--prefix", "9506000", "--key", "maker.key")
    assert epcs(await user.ok(*export, "--epc-format", "urn")) == [
        "urn:epc:id:sgtin:9506000.013435.PK-1"
    ]
    assert epcs(await user.ok(*export)) == [f"https://id.gs1.org/01/{GTIN}/21/PK-1"]
    code, _, err = await user.run(*export, "--epc-format", "tag")
    assert code == 2 and "--epc-format" in err
