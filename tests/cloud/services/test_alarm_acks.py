"""Alarm acknowledgements relayed by the cloud (cloud/api/routes/alarm_acks.py,
AlarmAckService.relay): an owner authorises a key for a site on the log (0x06 ack-key-add,
`pharmasync cloud ack-keys`), a signed ack by that key for a gateway of that site is stored
exactly once and listed in order; everything else is refused with its reason and counted.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from cloud.cli import main
from device import schnorr
from gateway import alarm_ack, config_entry
from gateway import registry_change as registry
from tests.cloud.api.test_app import OWNER, Cloud, settings, start

ACK = bytes(31) + b"\x81"  # the secret of a key the owner authorises
STRANGER = bytes(31) + b"\x82"
GATEWAY = schnorr.pubkey(bytes(31) + b"\x83")
ELSEWHERE = schnorr.pubkey(bytes(31) + b"\x84")  # a gateway at another site


def signed(secret: bytes, gateway: bytes = GATEWAY, alarm: str = "0badc0de") -> bytes:
    return alarm_ack.sign(secret, alarm_ack.AlarmAck(gateway, alarm, "A. Jones", int(time.time())))


async def ack_keys(cloud: Cloud, op: str, site: str, signer: bytes = OWNER) -> tuple[int, Any]:
    change = config_entry.ConfigChange(op, int(time.time()), key=schnorr.pubkey(ACK), site=site)
    request = config_entry.sign_request(signer, change)
    return await cloud.post("/v1/config", json.dumps(request).encode(), "application/json")


async def test_acks_by_an_authorised_key_are_relayed_once_and_others_refused(
    tmp_path: Path, database: str | None
) -> None:
    server, session = await start(settings(tmp_path / "cloud", database))
    cloud = Cloud(server, session)

    async def post(wire: bytes) -> tuple[int, Any]:
        return await cloud.post("/v1/alarm-acks", wire, "application/json")

    try:
        now = int(time.time())
        for key, site in ((GATEWAY, "w1"), (ELSEWHERE, "w2")):
            status, _ = await cloud.change(registry.GatewayRegistration(key, now, site=site))
            assert status == 201
        first = signed(ACK)
        # Not yet authorised: refused, nothing stored.
        status, problem = await post(first)
        assert (status, problem["reason"]) == (403, "unauthorised key"), problem
        # A stranger cannot authorise the key; the owner can.
        status, problem = await ack_keys(cloud, config_entry.ACK_KEY_ADD, "w1", STRANGER)
        assert (status, problem["reason"]) == (403, "unknown owner"), problem
        status, added = await ack_keys(cloud, config_entry.ACK_KEY_ADD, "w1")
        assert status == 201, added
        status, problem = await ack_keys(cloud, config_entry.ACK_KEY_ADD, "w1")  # again
        assert (status, problem["reason"]) == (409, "ack key exists"), problem
        status, problem = await ack_keys(cloud, config_entry.ACK_KEY_REMOVE, "w2")
        assert (status, problem["reason"]) == (409, "not an ack key"), problem

        status, answer = await post(first)
        assert status == 201, answer
        assert answer["gateway"] == GATEWAY.hex() and answer["alarm"] == "0badc0de"
        assert answer["log_size"] == added["log_index"] + 1  # checked with the key logged
        status, again = await post(first)  # a replay: the same answer, stored once
        assert (status, again) == (200, answer)
        second = signed(ACK, alarm="0badc0df")
        status, answer2 = await post(second)
        assert status == 201 and answer2["id"] > answer["id"], answer2

        refusals = [
            (signed(ACK, gateway=ELSEWHERE), 403, "unauthorised key"),  # another site
            (signed(STRANGER), 403, "unauthorised key"),
            (signed(ACK, gateway=schnorr.pubkey(STRANGER)), 404, "unregistered gateway"),
            (first.replace(b"A. Jones", b"B. Jones"), 403, "bad signature"),  # forged
            (b'{"ack": 1}', 400, "malformed"),
            (first.replace(b'"0badc0de"', b'"0BADC0DE"'), 400, "malformed"),
            (first[:-1], 400, "json"),  # not JSON at all
            (b"[" * 100 + b"]" * 100, 400, "json"),  # nested too deep
        ]
        for wire, want_status, reason in refusals:
            status, problem = await post(wire)
            assert (status, problem["reason"]) == (want_status, reason), (wire[:60], problem)

        _, page = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/alarm-acks")
        assert [a["id"] for a in page["acks"]] == [answer["id"], answer2["id"]]
        wires = [json.dumps(a["signed_ack"], separators=(",", ":")).encode() for a in page["acks"]]
        assert [alarm_ack.decode(w).ack.alarm for w in wires] == ["0badc0de", "0badc0df"]
        assert wires[0] == first  # the relayed bytes are the signed ack, compact
        _, later = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/alarm-acks", after=answer["id"])
        assert [a["signed_ack"]["ack"]["alarm"] for a in later["acks"]] == ["0badc0df"]
        assert (await cloud.get(f"/v1/gateways/{ELSEWHERE.hex()}/alarm-acks"))[1]["acks"] == []
        for path, params, want_status, reason in [
            (f"/v1/gateways/{GATEWAY.hex()}/alarm-acks", {"after": "-1"}, 400, "after"),
            (f"/v1/gateways/{GATEWAY.hex()}/alarm-acks", {"after": "9" * 30}, 400, "after"),
            (f"/v1/gateways/{GATEWAY.hex()}/alarm-acks", {"limit": "0"}, 400, "limit"),
            ("/v1/gateways/zz/alarm-acks", {}, 400, "gateway"),
            (f"/v1/gateways/{ELSEWHERE.hex()[:-2]}aa/alarm-acks", {}, 404, "unregistered gateway"),
        ]:
            status, problem = await cloud.get(path, **params)
            assert (status, problem["reason"]) == (want_status, reason), problem

        # The key withdrawn: a new ack by it is refused, the stored ones stay listed.
        assert (await ack_keys(cloud, config_entry.ACK_KEY_REMOVE, "w1"))[0] == 201
        status, problem = await post(signed(ACK, alarm="0badc0e0"))
        assert (status, problem["reason"]) == (403, "unauthorised key"), problem
        metrics = await (await session.get(cloud.url("/metrics"))).text()
        assert 'pharmasync_refused_total{reason="unauthorised key"} 4.0' in metrics
        assert 'pharmasync_refused_total{reason="bad signature"} 1.0' in metrics
    finally:
        await session.close()
        await server.close()


async def test_the_ack_keys_command_authorises_and_withdraws_a_key(
    tmp_path: Path, database: str | None, capsys: Any
) -> None:
    server, session = await start(settings(tmp_path / "cloud", database))
    cloud = Cloud(server, session)
    try:
        (tmp_path / "owner.key").write_text(OWNER.hex())
        (tmp_path / "owner.key").chmod(0o600)
        base = [
            "cloud",
            "ack-keys",
            "--cloud",
            cloud.url(""),
            "--owner-key",
            str(tmp_path / "owner.key"),
        ]
        key = schnorr.pubkey(ACK).hex()
        assert await _cli([*base, "add", key, "--site", "w1"]) == 0
        assert f"ack key {key} authorised for site w1" in capsys.readouterr().out
        assert await _cli([*base, "remove", key, "--site", "w1"]) == 0
        assert "withdrawn" in capsys.readouterr().out
        assert await _cli([*base, "add", key, "--site", ""]) == 2
        assert "site" in capsys.readouterr().err
        _, page = await cloud.get("/v1/registry/entries", after=0)
        changes = [
            config_entry.parse_entry(bytes.fromhex(e["entry"])[1:])[1] for e in page["entries"]
        ]
        assert [(c.op, c.site) for c in changes] == [
            ("ack-key-add", "w1"),
            ("ack-key-remove", "w1"),
        ]
    finally:
        await session.close()
        await server.close()


async def _cli(argv: list[str]) -> int:
    """Run `pharmasync ARGV` on a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, argv)
