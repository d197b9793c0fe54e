"""The GS1 Digital Link resolver at /01/... (cloud/api/routes/resolver.py): the page a phone
shows (headless Chromium, phone-sized), the JSON facts and their proof, linkType and the
linkset, and every refusal; on SQLite and PostgreSQL (the route reads the contracts' state,
the log and the stamped checkpoints)."""

from __future__ import annotations

import datetime
import html
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from cloud.api.routes import resolver_links as links
from cloud.api.routes.resolver import negotiate
from cloud.audit.public_check import Scanned, verify_public
from cloud.audit.public_verify import describe
from cloud.contracts import gs1, public_facts, public_pack
from cloud.contracts.digital_link import parse_digital_link
from cloud.contracts.public_proof import PublicProof
from cloud.services.refusals import LedgerError
from tests.cloud.api import test_packs as packs
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_auth import cloud  # noqa: F401  (the fixture)
from tests.cloud.api.test_home import render_phone
from tests.cloud.api.test_traces import lots_tx
from tests.cloud.api.test_tx import GTIN, M, admit, applied, commission, receive, ship
from tests.gateway.test_status import render_in_chromium

LOT = f"/01/{GTIN}/10/L1"
GTIN13 = GTIN[1:]  # the same GTIN-13 (9506000134352): normalised to 14 digits


async def fetch(
    app: Cloud, path: str, accept: str | None = None, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    headers = {} if accept is None else {"Accept": accept}
    async with app.session.get(app.url(path), headers=headers, **kw) as r:
        return r.status, dict(r.headers), await r.read()


async def json_of(app: Cloud, path: str) -> dict[str, Any]:
    status, headers, body = await fetch(app, path, "application/json")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")

    return dict(json.loads(body))


async def vkey(app: Cloud) -> str:
    status, text = await app.get("/v1/log/vkey")
    assert status == 200
    return bytes(text).decode().strip()


async def made(cloud: Cloud) -> None:  # noqa: F811
    await applied(cloud, admit("M"))
    await applied(cloud, commission("L1", 10))


async def test_a_registered_lot_is_authentic_and_its_proof_verifies(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    answer = await json_of(cloud, LOT + "?17=271200")
    facts = answer["facts"]
    assert facts["authentic"] is True and facts["verdict"] == public_facts.DISPENSABLE
    assert facts["expiry"] == "2027-12-31" and facts["expired"] is False
    assert facts["scanned_expiry"] == {"yymmdd": "271200", "date": "2027-12-31", "agrees": True}
    assert facts["quality"]["status"] == "released" and facts["recall"] is None
    assert facts["coldchain"]["within_profile"] is True
    assert answer["serial"] is None and facts["serial"] is None
    # Only public records: no holder, quantity, shipment or leg anywhere in the answer.
    text = str(answer)
    for private in ("quantity", "holder", "shipment", "custody", "in_transit"):
        assert private not in text, private
    # The proof: the checkpoint is of the size that first includes the state root.
    bundle = PublicProof.from_json(answer["proof"])
    scanned = Scanned(GTIN, "L1")
    report = verify_public(
        PublicProof.to_bytes(bundle), log_vkey=await vkey(cloud), scanned=scanned
    )
    assert report.size == bundle.index + 1 and report.facts["authentic"] is True
    assert answer["as_of"] == report.as_of
    # The binary form is the same bundle, and its bytes are stable (kept stamp).
    status, _, body = await fetch(cloud, LOT, "application/vnd.pharmasync.public-proof")
    assert status == 200 and PublicProof.from_bytes(body) == bundle
    assert len(body) <= 4096


async def test_a_pack_expiry_that_differs_and_a_recall_are_reported(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    facts = (await json_of(cloud, LOT + "?17=271100"))["facts"]
    assert facts["scanned_expiry"]["agrees"] is False
    assert facts["verdict"] == public_facts.DO_NOT_DISPENSE
    assert "is not the registered 2027-12-31" in facts["reasons"][0]
    before = await json_of(cloud, LOT)
    recall = {"lot": "L1", "class": "I", "reason": "contamination"}
    await applied(cloud, lots_tx(M, "recall", recall))
    after = await json_of(cloud, LOT)
    assert after["facts"]["recalled"] is True and after["facts"]["recall"]["class"] == "I"
    assert after["facts"]["verdict"] == public_facts.DO_NOT_DISPENSE
    assert after["proof"]["index"] > before["proof"]["index"]
    # The earlier bundle still verifies against its own checkpoint, saying what it said then.
    key = await vkey(cloud)

    old = verify_public(json.dumps(before).encode(), log_vkey=key, scanned=Scanned(GTIN, "L1"))
    assert old.facts["recalled"] is False and old.size == before["proof"]["index"] + 1


async def test_an_unknown_lot_is_proven_absent(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    answer = await json_of(cloud, f"/01/{GTIN13}/10/FAKE")  # GTIN-13: padded to 14
    assert answer["gtin"] == GTIN
    assert answer["facts"]["authentic"] is False
    assert answer["facts"]["verdict"] == public_facts.UNKNOWN

    report = verify_public(
        json.dumps(answer["proof"]).encode(),
        log_vkey=await vkey(cloud),
        scanned=Scanned(GTIN, "FAKE"),
    )
    assert report.facts["authentic"] is False


async def packs_moved_and_dispensed(app: Cloud) -> None:
    """test_packs' chain (L1 of 200 packs serialized; P holds 10), then D splits 4 of L1
    into C1 (PK00050, PK00051) and C2 (PK00052, PK00053), M recalls C2."""
    for step in packs.chain_steps():
        await applied(app, step)
    await applied(app, ship(packs.M, "L1", "S9", packs.D, 4))
    await applied(app, receive(packs.D, "S9", 4))
    kids = [{"lot": "C1", "quantity": 2}, {"lot": "C2", "quantity": 2}]
    moved = {"C1": ["PK00050", "PK00051"], "C2": ["PK00052", "PK00053"]}
    await applied(
        app, packs.lots_tx(packs.D, "split", {"lot": "L1", "children": kids, "serials": moved})
    )
    recall = {"lot": "C2", "class": "II", "reason": "label"}
    await applied(app, packs.lots_tx(packs.M, "recall", recall))


def pack_link(serial: str, lot: str | None = "L1", expiry: str | None = "271200") -> str:
    path = f"/01/{GTIN}" + ("" if lot is None else f"/10/{lot}") + f"/21/{serial}"
    return path + ("" if expiry is None else f"?17={expiry}")


async def pack_report(app: Cloud, answer: dict[str, Any], scanned: Scanned) -> Any:
    return verify_public(json.dumps(answer).encode(), log_vkey=await vkey(app), scanned=scanned)


async def test_a_pack_is_answered_with_its_public_facts_and_proof(regulated: Cloud) -> None:
    await packs_moved_and_dispensed(regulated)
    answer = await json_of(regulated, pack_link("PK00007"))
    facts = answer["facts"]
    assert facts["verdict"] == public_facts.DISPENSABLE and facts["reasons"] == []
    assert facts["serial"] == {
        "value": "PK00007",
        "checked": True,
        "registered": True,
        "registered_lot": "L1",
        "registration": 1,
        "registered_since": facts["serial"]["registered_since"],
        "status": "active",
        "in_supply_chain": True,
        "lot": "L1",
        "moved": False,
    }
    # the public's view: no holder, quantity, leg, nor who dispensed
    text = json.dumps(answer)
    for private in ("quantity", "holder", "shipment", "custody", "in_transit", packs.P.did):
        assert private not in text, private
    expiry = gs1.expiry("271200", datetime.date(2026, 1, 1))
    report = await pack_report(regulated, answer, Scanned(GTIN, "L1", "PK00007", expiry))
    assert report.facts == facts | {"serial": facts["serial"]} and report.size == report.index + 1
    status, _, body = await fetch(regulated, pack_link("PK00007"), links.PROOF_TYPE)
    assert status == 200 and PublicProof.from_bytes(body) == PublicProof.from_json(answer["proof"])
    print(f"pack bundle: {len(body)} bytes")
    # dispensed: decommissioned, status only; the bundle saved before still verifies
    await applied(regulated, packs.decommission(packs.P, "PK00007"))
    after = await json_of(regulated, pack_link("PK00007"))
    serial = after["facts"]["serial"]
    assert (serial["status"], serial["in_supply_chain"]) == ("dispensed", False)
    assert after["facts"]["verdict"] == public_facts.DO_NOT_DISPENSE
    assert packs.P.did not in json.dumps(after)
    old = await pack_report(regulated, answer, Scanned(GTIN, "L1", "PK00007"))
    assert old.facts["serial"]["in_supply_chain"] is True and old.index < after["proof"]["index"]
    new = await pack_report(regulated, after, Scanned(GTIN, "L1", "PK00007"))
    assert new.facts["serial"]["status"] == "dispensed"
    # the grammar's /01/{gtin}/21/{serial}: the same pack, its lot read from the ledger
    lotless = await json_of(regulated, pack_link("PK00001", lot=None, expiry=None))
    assert lotless["facts"]["serial"]["registered_lot"] == "L1"
    report = await pack_report(regulated, lotless, Scanned(GTIN, None, "PK00001"))
    assert report.facts["verdict"] == public_facts.DISPENSABLE


async def test_a_moved_pack_answers_for_the_lot_it_is_really_in(regulated: Cloud) -> None:
    await packs_moved_and_dispensed(regulated)
    answer = await json_of(regulated, pack_link("PK00052"))  # label: the parent L1
    facts = answer["facts"]
    assert facts["serial"]["lot"] == "C2" and facts["serial"]["moved"] is True
    assert facts["recalled"] is True and facts["recall"]["class"] == "II"
    assert facts["verdict"] == public_facts.DO_NOT_DISPENSE
    report = await pack_report(regulated, answer, Scanned(GTIN, "L1", "PK00052"))
    assert report.facts["recalled"] is True and report.facts["serial"]["lot"] == "C2"
    sibling = await json_of(regulated, pack_link("PK00050"))  # C1: not recalled
    assert sibling["facts"]["verdict"] == public_facts.DISPENSABLE


async def test_a_label_that_differs_or_an_unknown_serial_is_suspect(regulated: Cloud) -> None:
    await packs_moved_and_dispensed(regulated)
    answer = await json_of(regulated, pack_link("PK00008", lot="L2"))
    other_lot = answer["facts"]
    assert other_lot["verdict"] == public_pack.SUSPECT
    assert other_lot["reasons"][0] == "label lot L2 is not the registered lot L1"
    # offline too: the registration is proven under the registered lot the bundle states
    expiry = gs1.expiry("271200", datetime.date(2026, 1, 1))
    report = await pack_report(regulated, answer, Scanned(GTIN, "L2", "PK00008", expiry))
    assert report.facts == other_lot
    other_expiry = await json_of(regulated, pack_link("PK00008", expiry="271100"))
    assert other_expiry["facts"]["verdict"] == public_pack.SUSPECT
    assert "label expiry 271100" in other_expiry["facts"]["reasons"][0]
    # AI 17 day 00 is the month's last day: 271231 and 271200 both say 2027-12-31
    same = await json_of(regulated, pack_link("PK00008", expiry="271231"))
    assert same["facts"]["verdict"] == public_facts.DISPENSABLE
    unknown = await json_of(regulated, pack_link("FAKE"))
    assert unknown["facts"]["verdict"] == public_pack.SUSPECT
    assert unknown["facts"]["reasons"][0] == public_pack.NOT_REGISTERED
    assert unknown["facts"]["serial"]["registered"] is False
    assert unknown["facts"]["authentic"] is False  # its lot is real; the pack is not
    report = await pack_report(regulated, unknown, Scanned(GTIN, "L1", "FAKE"))
    assert report.facts["verdict"] == public_pack.SUSPECT and not report.facts["authentic"]
    assert "authentic: NO — no manufacturer registered" in "\n".join(describe(report))
    # no lot and an unknown serial: nothing to prove, said so
    status, _, body = await fetch(regulated, pack_link("FAKE", lot=None), links.PROOF_TYPE)
    assert status == 404 and b"not registered" in body


async def test_a_pack_page_reads_on_a_phone(regulated: Cloud, tmp_path: Path) -> None:
    await packs_moved_and_dispensed(regulated)
    await applied(regulated, packs.decommission(packs.P, "PK00007"))
    good, png = await render_in_chromium(regulated.url(pack_link("PK00001")), tmp_path)
    assert 'data-verdict="dispensable"' in good and "in the supply chain (active)" in good
    dispensed, _ = await render_in_chromium(regulated.url(pack_link("PK00007")), tmp_path / "d")
    assert "decommissioned (dispensed)" in dispensed and packs.P.did not in dispensed
    moved, _ = await render_in_chromium(regulated.url(pack_link("PK00052")), tmp_path / "m")
    assert "C2 (moved by a split" in moved and "class II" in moved
    fake, _ = await render_in_chromium(regulated.url(pack_link("FAKE")), tmp_path / "f")
    assert 'data-verdict="suspect"' in fake and "NOT registered" in fake
    assert "Suspect pack" in fake
    phone = await render_phone(regulated.url(pack_link("FAKE")), tmp_path)
    assert png.stat().st_size > 10_000 and phone.stat().st_size > 10_000


async def test_linktype_all_answers_the_linkset(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    status, headers, body = await fetch(cloud, LOT + "?linkType=all")
    assert status == 200 and headers["Content-Type"].startswith("application/linkset+json")

    linkset = json.loads(body)["linkset"]
    assert len(linkset) == 1 and linkset[0]["anchor"].endswith(LOT)
    rels = set(linkset[0]) - {"anchor"}
    for rel in ("defaultLink", "pip", "verificationService", "recallStatus", "certificationInfo"):
        assert f"https://gs1.org/voc/{rel}" in rels, rel
    (epcis,) = linkset[0]["https://gs1.org/voc/epcis"]
    assert epcis["href"].endswith(f"/v1/lots/{GTIN}/L1/epcis")
    assert epcis["type"] == "application/ld+json"
    for targets in (linkset[0][r] for r in rels):
        for target in targets:
            assert {"href", "type", "title"} <= set(target)
            # every link leads somewhere
            s, _, _ = await fetch(cloud, target["href"].removeprefix(cloud.url("").rstrip("/")),
                                  target["type"])  # fmt: skip
            assert s == 200, target
    # The resolver standard's `linkType=linkset` is the same document.
    s, _, again = await fetch(cloud, LOT + "?linkType=linkset")
    assert s == 200 and json.loads(again)["linkset"] == linkset
    # Accept: application/linkset+json answers it too; every answer links to it.
    s, h, _ = await fetch(cloud, LOT, "application/linkset+json")
    assert s == 200 and h["Content-Type"].startswith("application/linkset+json")
    assert 'rel="linkset"' in h["Link"] and "linkType=all" in h["Link"]


async def test_a_link_type_redirects_to_its_link_or_the_default(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    s, h, _ = await fetch(cloud, LOT + "?linkType=gs1:recallStatus", allow_redirects=False)
    assert s == 307 and h["Location"].endswith(f"/v1/lots/{GTIN}/L1")
    full = "https://ref.gs1.org/voc/certificationInfo"
    s, h, _ = await fetch(cloud, LOT + "?linkType=" + full, allow_redirects=False)
    assert s == 307 and "/v1/certificates?subject=" in h["Location"]
    s, h, body = await fetch(cloud, LOT + "?linkType=gs1:epcis")  # followed: the document
    assert s == 200 and h["Content-Type"].startswith("application/ld+json")
    assert json.loads(body)["type"] == "EPCISDocument"
    pack = f"/01/{GTIN}/10/L1/21/PK1?linkType=gs1:epcis"
    s, h, _ = await fetch(cloud, pack, allow_redirects=False)  # a pack's: its label lot's
    assert s == 307 and h["Location"].endswith(f"/v1/lots/{GTIN}/L1/epcis")
    s, h, _ = await fetch(cloud, LOT + "?linkType=gs1:epil", allow_redirects=False)
    assert s == 307 and h["Location"].endswith(LOT)  # none of that type: the default link


@pytest.mark.parametrize(
    ("path", "reason", "says"),
    [
        (f"/01/{GTIN[:-1]}3/10/L1", "AI 01", "check digit 2, not 3"),
        ("/01/123/10/L1", "AI 01", "8, 12, 13 or 14 digits"),
        ("/01/0950600013435X/10/L1", "AI 01", "digits"),
        (f"/01/{GTIN}/10/" + "L" * 21, "AI 10", "1..20 characters"),
        (f"/01/{GTIN}/10/L%201", "AI 10", "' ' at 1"),
        (f"/01/{GTIN}/10/L1/21/" + "S" * 21, "AI 21", "1..20 characters"),
        (f"/01/{GTIN}/22/" + "V" * 21, "AI 22", "1..20 characters"),
        (f"/01/{GTIN}/21/S/10/L1", "path", "in the order 22, 10, 21"),
        (f"/01/{GTIN}/10/L1/10/L2", "path", "AI 10 once, not repeated"),
        (f"/01/{GTIN}/99/x", "path", "(22, 10 or 21)"),
        (f"/01/{GTIN}/10", "path", "/AI/value pairs"),
        (f"/01/{GTIN}/10/%FF", "path", "escapes of ASCII characters only"),
        (f"/01/x/01/{GTIN}/10/L1", "path", "nothing before /01/"),
        (LOT + "?17=270300&17=270300", "query", "17 once"),
        (LOT + "?00=123", "AI 00", "a data attribute of a GTIN"),
        (LOT + "?17", "query", "key=value"),
        (LOT + "?17=270231", "AI 17", "day 00..28"),
        (LOT + "?17=2712", "AI 17", "YYMMDD"),
    ],
)
async def test_each_malformed_link_is_a_400_naming_it(
    cloud: Cloud,  # noqa: F811
    path: str,
    reason: str,
    says: str,
) -> None:
    status, headers, body = await fetch(cloud, path, "application/json")

    problem = json.loads(body)
    assert status == 400 and headers["Content-Type"].startswith("application/problem+json"), body
    assert problem["reason"] == reason and says in problem["detail"], problem


async def test_an_unmet_accept_is_406(cloud: Cloud) -> None:  # noqa: F811
    await made(cloud)
    status, _, body = await fetch(cloud, LOT, "image/png")
    assert status == 406 and b'"accept"' in body


def test_negotiation_prefers_quality_then_order() -> None:
    assert negotiate(None) == "text/html"
    assert negotiate("*/*") == "text/html"
    assert negotiate("application/json") == "application/json"
    assert negotiate("text/html;q=0.5, application/json") == "application/json"
    assert negotiate("application/*") == "application/json"
    assert negotiate("application/linkset+json, application/json") == "application/linkset+json"
    with pytest.raises(LedgerError):
        negotiate("text/plain")
    with pytest.raises(LedgerError):
        negotiate("application/json;q=0")


async def test_a_gtin_alone_says_a_lot_is_needed(cloud: Cloud) -> None:  # noqa: F811
    answer = await json_of(cloud, f"/01/{GTIN}")
    assert answer == {
        "gtin": GTIN,
        "cpv": None,
        "checked": False,
        "reason": "no lot (AI 10) in the link: a pack's check needs its lot",
    }


async def test_the_page_reads_on_a_phone(cloud: Cloud, tmp_path: Path) -> None:  # noqa: F811
    await made(cloud)
    await applied(cloud, commission("L2", 10))
    await applied(cloud, lots_tx(M, "recall", {"lot": "L2", "class": "II", "reason": "label"}))
    good, png = await render_in_chromium(cloud.url(LOT + "?17=271200"), tmp_path)
    assert 'data-verdict="dispensable"' in good and "OK to dispense" in good
    assert "2027-12-31" in good and "within its profile" in good
    assert 'name="viewport"' in good and "As of " in good
    bad, _ = await render_in_chromium(cloud.url(f"/01/{GTIN}/10/L2"), tmp_path / "bad")
    assert 'data-verdict="do not dispense"' in bad and "class II: label" in bad
    unknown, _ = await render_in_chromium(cloud.url(f"/01/{GTIN}/10/NOPE"), tmp_path / "u")
    assert 'data-verdict="unknown"' in unknown and "suspect" in unknown
    phone = await render_phone(cloud.url(LOT), tmp_path)
    assert png.stat().st_size > 10_000 and phone.stat().st_size > 10_000
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert today in good  # the "as of" time


async def test_the_resolver_describes_itself(cloud: Cloud) -> None:  # noqa: F811
    status, _, body = await fetch(cloud, "/.well-known/gs1resolver")
    found = json.loads(body)
    assert status == 200 and found["supportedPrimaryKeys"] == ["01"]
    assert found["resolverRoot"] == cloud.url("").rstrip("/")
    assert found["supportedLinkType"][0]["namespace"] == "https://gs1.org/voc/"


async def test_the_pages_commands_cannot_be_made_to_run_anything_else(cloud: Cloud) -> None:  # noqa: F811
    """A link's query (and a lot of set 82, which may hold a quote) reaches the page's
    copy-paste commands only as the parsed link, shell-quoted: pasted, each command is the
    one it says (found by an attacker's pass: `?x=';id;'` once broke out of its quotes)."""
    await made(cloud)
    await applied(cloud, commission("L'2", 10))
    for path in (f"{LOT}?x=%27%3Bid%3B%27", f"/01/{GTIN}/10/L%272?17=271200"):
        status, _, body = await fetch(cloud, path, "text/html")
        assert status == 200, body
        pre = html.unescape(body.decode().split("<pre>", 1)[1].split("</pre>", 1)[0])
        fetch_proof, check = [shlex.split(line) for line in pre.splitlines()[1:]]
        link = fetch_proof[4]
        assert fetch_proof[:4] == ["curl", "-s", "-H", "Accept: " + links.PROOF_TYPE]
        assert fetch_proof[5:] == ["-o", "check.bin"] and "id" not in link.split("/")[-1]
        assert check == [
            "pharmasync", "verify", "--public", "check.bin", "--link", link,
            "--log-vkey", "@ledger.vkey",
        ]  # fmt: skip
        assert parse_digital_link(link, datetime.date.today()).lot in ("L1", "L'2")
