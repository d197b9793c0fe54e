"""Raw scans at the counter (POST /v1/packs/verify {"scan": ...}; cloud/services/packs.py
parse_raw_scan over digital_link.scan_from_any): a GS1 element string with GS separators
and a symbology identifier, its human-readable form and a Digital Link URI all reach the
same verdict as the split fields; every parser refusal is a 400 "scan" whose detail names
the AI and why (bad check digit, unknown AI, serial too long or outside set 82, missing
separator); a scan of another GTIN's serial is unknown and suspect; arbitrary scan text
(hypothesis, on a served app) never yields a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloud.api.app import make_app
from cloud.contracts import gs1
from cloud.settings import CloudSettings
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_auth import signed_in
from tests.cloud.api.test_packs import P, chain_steps, decommission, verify
from tests.cloud.api.test_tx import applied
from tests.cloud.contracts.gs1_strategies import gtins, set82
from tests.cloud.contracts.world import GTIN, REGULATOR
from tests.cloud.served import Served

GS = "\x1d"
OTHER_GTIN = "0950600013436" + str(gs1.check_digit("0950600013436"))  # no serial registered


def forms(serial: str, lot: str = "L1", expiry: str = "271200", gtin: str = GTIN) -> list[str]:
    """One pack's scan in each form a counter's scanner may send."""
    return [
        f"]d2{GS}01{gtin}17{expiry}10{lot}{GS}21{serial}",  # DataMatrix, FNC1 as GS
        f"01{gtin}21{serial}{GS}10{lot}{GS}17{expiry}",  # another order, no identifier
        f"(01){gtin}(17){expiry}(10){lot}(21){serial}",  # human-readable
        f"https://id.gs1.org/01/{gtin}/10/{lot}/21/{serial}?17={expiry}",  # Digital Link
        f"]Q1https://example.com/p/01/{gtin[1:]}/10/{lot}/21/{serial}?17={expiry}",  # GTIN-13
    ]


async def test_every_scan_form_gives_the_verdict_of_its_fields(regulated: Cloud) -> None:
    for step in chain_steps():
        await applied(regulated, step)
    for raw in forms("PK00007"):
        status, answer = await verify(regulated, P, {"scan": raw})
        assert status == 200, (raw, answer)
        assert (answer["gtin"], answer["serial"]) == (GTIN, "PK00007"), raw
        assert answer["scanned"] == {"lot": "L1", "expiry": "271200", "raw": raw}
        assert (answer["verdict"], answer["dispensable"]) == ("authentic", True), raw
    # the label's lot or expiry differ from the registration: suspect
    for raw in forms("PK00008", lot="L2") + forms("PK00008", expiry="271100"):
        answer = (await verify(regulated, P, {"scan": raw}))[1]
        assert (answer["verdict"], answer["suspect"]) == ("mismatch", True), raw
    # 271231 and 271200 (day 00: the month's last day) agree
    answer = (await verify(regulated, P, {"scan": forms("PK00008", expiry="271231")[0]}))[1]
    assert answer["verdict"] == "authentic"
    # a scan of another GTIN's serial: PK00009 is registered under GTIN only
    for raw in forms("PK00009", gtin=OTHER_GTIN):
        answer = (await verify(regulated, P, {"scan": raw}))[1]
        assert answer["gtin"] == OTHER_GTIN
        assert (answer["verdict"], answer["suspect"], answer["pack"]) == ("unknown", True, None)
    # a dispensed pack scanned again: decommissioned, with who where the reader may see it
    await applied(regulated, decommission(P, "PK00010"))
    answer = (await verify(regulated, P, {"scan": forms("PK00010")[3]}))[1]
    assert answer["verdict"] == "decommissioned" and answer["decommission"]["by"] == P.did
    answer = (await verify(regulated, REGULATOR, {"scan": forms("PK00010")[0]}))[1]
    assert answer["verdict"] == "decommissioned" and answer["decommission"] is None
    # fields sent beside a scan must agree with it
    body = {"scan": forms("PK00007")[0], "serial": "PK00008"}
    status, problem = await verify(regulated, P, body)
    assert (status, problem["reason"]) == (400, "serial") and "PK00007" in problem["detail"]
    body = {"scan": forms("PK00007")[0], "gtin": GTIN, "serial": "PK00007", "expiry": "271200"}
    assert (await verify(regulated, P, body))[1]["verdict"] == "authentic"


# (scan, the AI its refusal names, a word of the reason)
REFUSED: list[tuple[str, str, str]] = [
    (f"]d2{GS}01095060001343531727120010L1{GS}21PK00001", "01", "check digit"),
    ("(01)09506000134353(21)PK00001", "01", "check digit"),
    ("https://id.gs1.org/01/09506000134353/21/PK00001", "01", "check digit"),
    (f"01{GTIN}9912{GS}21PK00001", "99", "an AI among"),
    (f"(01){GTIN}(98)X(21)PK00001", "98", "an AI among"),
    (f"01{GTIN}21{'S' * 21}", "21", "at most 20"),
    (f"(01){GTIN}(21){'S' * 21}", "21", "20 characters"),
    (f"https://id.gs1.org/01/{GTIN}/21/{'S' * 21}", "21", "20"),
    (f"01{GTIN}21PK 0001", "21", "set 82"),
    (f"(01){GTIN}(21)PK\u00e90001", "21", "set 82"),
    (f"https://id.gs1.org/01/{GTIN}/21/PK%200001", "21", "set 82"),
    (f"01{GTIN}10ABCDEFGHIJKLMNOPQRS21PK00001", "10", "separator missing"),  # no GS after 10
    (f"01{GTIN}10L121PK00001", "21", "separator missing"),  # 10 swallowed 21: no serial
    (f"01{GTIN}10L1", "21", "a serial"),  # a lot's label, not a pack's
    (f"]X1{GS}01{GTIN}21PK00001", "symbology", "GS1 symbology"),
    (f"01{GTIN}1727130010L1{GS}21PK00001", "17", "month"),
]


async def test_each_parser_refusal_is_a_400_naming_the_ai(regulated: Cloud) -> None:
    for step in chain_steps()[:6]:
        await applied(regulated, step)
    size = (await regulated.get("/v1/state"))[1]
    for raw, ai, why in REFUSED:
        status, problem = await verify(regulated, P, {"scan": raw})
        assert (status, problem["reason"]) == (400, "scan"), (raw, problem)
        assert problem["detail"].startswith(f"scan: AI {ai}: "), (raw, problem["detail"])
        assert why in problem["detail"], (raw, problem["detail"])
    assert (await regulated.get("/v1/state"))[1] == size  # a read: nothing applied
    for bad in ("", 7, ["x"], "x" * 513):
        status, problem = await verify(regulated, P, {"scan": bad})
        assert (status, problem["reason"]) == (400, "scan"), bad


# -- hypothesis over the route ---------------------------------------------------------------


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """A served cloud (SQLite) with a serialized lot L1 and a pharmacy P signed in: the
    server and P's bearer header value."""
    config = CloudSettings(
        data_dir=Path(tmp_path_factory.mktemp("cloud")), regulators=(REGULATOR.xonly,)
    )
    with Served(make_app(config)) as served:
        for step in chain_steps()[:8]:  # admitted, commissioned and serialized
            answer = served.request("POST", "/v1/tx", step.to_wire())
            assert answer.status == 201, answer
        found = served.request("POST", "/v1/auth/challenge", b"", {})
        challenge = bytes.fromhex(json.loads(found.body)["challenge"])
        body = json.dumps(signed_in(P, challenge)).encode()
        issued = served.request("POST", "/v1/auth/token", body, {})
        assert issued.status == 201, issued
        yield served, f"Bearer {json.loads(issued.body)['token']}"


AI_PIECES = st.sampled_from(
    ["01", "17", "10", "21", "11", "22", "240", "(", ")", GS, "]d2", "]C1", "]Q1", "/01/", "/21/"]
)
SCAN_TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(AI_PIECES, set82, gtins(), st.text(max_size=4)), max_size=12).map("".join),
    st.builds(
        lambda g, s, lot, sep: f"01{g}10{lot}{sep}21{s}", gtins(), set82, set82, st.text(max_size=2)
    ),
    st.builds(lambda p, g, s: f"https://{p}/01/{g}/21/{s}", st.text(max_size=12), gtins(), set82),
    st.builds(lambda g, s, lot: f"]d2{GS}01{g}10{lot}{GS}21{s}", gtins(), set82, set82),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=SCAN_TEXT)
def test_any_scan_text_is_answered_never_500(counter: tuple[Served, str], raw: str) -> None:
    served, token = counter
    body = json.dumps({"scan": raw}).encode()
    headers = {"Authorization": token, "Content-Type": "application/json"}
    answer = served.request("POST", "/v1/packs/verify", body, headers)
    assert answer.status in (200, 400), (raw, answer)
    event(f"status {answer.status}")  # --hypothesis-show-statistics: both occur
    if answer.status == 400:
        problem = answer.problem()
        assert problem["reason"] == "scan", (raw, problem)
    else:
        verdict = json.loads(answer.body)
        assert verdict["scanned"]["raw"] == raw and verdict["verdict"], verdict
