"""Alarm escalation through the real gateway service: readings raise an alarm, and the
messages arrive at a real local webhook server and a real SMTP server (aiosmtpd), level by
level, until someone acknowledges. Time is compressed through the settings (levels fractions
of a second apart), never by sleeping for minutes."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from device import reading, schnorr, topics
from gateway import alarm_ack, app, event, status
from gateway import settings as gw_settings
from gateway.alarms import AlarmEvent, AlarmProfile, LotProfile, with_lots
from gateway.escalation import AlarmStore, Escalation
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import free_port
from tests.gateway.notify_servers import SmtpReceiver, WebhookReceiver, wait_for

BOX_SECRET = bytes(31) + b"\x51"
BOX = schnorr.pubkey(BOX_SECRET)
BOX_ID = topics.device_id(BOX)
GATEWAY_SECRET = bytes(31) + b"\x52"
OWNER_SECRET = bytes(31) + b"\x53"  # a key the site's owner authorised to acknowledge
TOKEN = "let-me-ack"
TARGETS = ("on-call", "alice", "bob", "carol", "bridge")


def notify_settings(
    tmp: Path,
    hook: WebhookReceiver,
    smtp: SmtpReceiver,
    sections: dict[str, Any] | None = None,
    **notify: Any,
) -> gw_settings.Settings:
    """Three levels 0.5 s apart, the last repeated every 0.6 s, retries from 0.1 s; any
    further gateway.toml `sections` (tests/gateway/test_ack_relay.py: uplink, registry)."""
    return gw_settings.from_dict(
        {
            "gateway": {"site": "w1", "data_dir": str(tmp)},
            "spool": {"commit_interval_s": 0.0},
            "status": {"port": 0},
            "alarms": {"fast": {"delay_consecutive_s": 0}},
            "notify": {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "mail_from": "gateway@w1.example",
                "tick_s": 0.05,
                "retry_min_s": 0.1,
                "retry_max_s": 0.2,
                "repeat_every_s": 0.6,
                "timeout_s": 2.0,
                "ack_keys": [schnorr.pubkey(OWNER_SECRET).hex()],
                "ack_token": TOKEN,
                "targets": {
                    "on-call": hook.url("on-call"),
                    "alice": "mailto:alice@w1.example",
                    "bob": "mailto:bob@w1.example",
                    "carol": "mailto:carol@w1.example",
                    "bridge": hook.url("bridge"),
                },
            }
            | notify,
            "escalation": [
                {"after_s": 0, "notify": ["on-call", "alice"]},
                {"after_s": 0.5, "notify": ["bob"]},
                {"after_s": 1.0, "notify": ["carol", "bridge"]},
            ],
        }
        | (sections or {})
    )


def who(rcpt: str) -> str:
    return rcpt.split("@")[0]


class Site:
    """A gateway (the real service, no broker: readings go to Gateway.receive) with alarm
    escalation running, and the receivers that play the people it tells."""

    def __init__(self, gw: Gateway, esc: Escalation, hook: WebhookReceiver, smtp: SmtpReceiver):
        self.gw, self.esc, self.hook, self.smtp = gw, esc, hook, smtp
        self.seq = 0

    async def feed(self, *celsius: float) -> None:
        now = int(time.time())
        for c in celsius:
            wire = reading.sign(BOX_SECRET, self.seq, now + self.seq, round(c * 100), 5000)
            await self.gw.receive(wire, "test")
            self.seq += 1
        await self.gw.flush()

    def messages(self) -> list[tuple[str, str]]:
        """(target, notice) of everything received, in arrival order."""
        both = self.hook.received + self.smtp.received
        return [(who(m.target), m.notice) for m in sorted(both, key=lambda m: m.at)]

    def got(self, target: str, notice: str) -> int:
        return sum(1 for m in self.messages() if m == (target, notice))

    def alarm_id(self) -> str:
        (row,) = self.esc.store.alarms()
        return str(row["id"])


@asynccontextmanager
async def running_site(
    tmp: Path, sections: dict[str, Any] | None = None, **notify: Any
) -> AsyncIterator[Site]:
    hook, smtp = WebhookReceiver(), SmtpReceiver()
    await hook.start()
    smtp.start()
    s = notify_settings(tmp, hook, smtp, sections, **notify)
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    reg.put(Box(BOX, "Vaccine fridge 2", "w1", zone="cold-room-B", profile="fast"))
    spool = Spool(tmp / "spool.sqlite")
    gw = Gateway(s, reg, spool, GATEWAY_SECRET)
    esc = app.start_escalation(gw)
    task = asyncio.create_task(esc.run())
    try:
        yield Site(gw, esc, hook, smtp)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await gw.stop()
        esc.store.close()
        spool.close()
        reg.close()
        await hook.stop()
        smtp.stop()


async def test_an_alarm_escalates_level_by_level_until_acknowledged(tmp_path: Path) -> None:
    async with running_site(tmp_path / "gw") as site:
        await site.feed(5.0, 12.25)  # one reading over 8 °C raises "high" (no delay)
        raised_at = time.time()
        await wait_for(lambda: site.got("alice", "raised") == 1, what="level 1 e-mail")
        await wait_for(lambda: all(site.got(t, "raised") for t in TARGETS), what="level 3")
        first = {t: min(m.at for m in site.hook.received + site.smtp.received if who(m.target) == t)
                 for t in TARGETS}  # fmt: skip
        assert first["on-call"] - raised_at < 0.5 and first["alice"] - raised_at < 0.5
        assert 0.5 <= first["bob"] - raised_at < 1.5, "level 2 waits for its after_s"
        assert first["carol"] - raised_at >= 1.0 and first["bridge"] - raised_at >= 1.0
        # The last level repeats (only it) while nobody acknowledges.
        repeated = lambda: site.got("bridge", "repeat") and site.got("carol", "repeat")  # noqa: E731
        await wait_for(repeated, what="a repeat of level 3")
        assert all(site.got(t, "repeat") == 0 for t in ("on-call", "alice", "bob"))
        assert all(site.got(t, "raised") == 1 for t in TARGETS), "each level is sent once"

        # What the warehouse person reads: site, zone, box, kind, reading, since, limit, how.
        mail = next(m for m in site.smtp.received if who(m.target) == "alice")
        alarm = site.alarm_id()
        assert "[PharmaSync w1] ALARM: temperature too high" in mail.subject
        assert "Vaccine fridge 2" in mail.subject and "zone cold-room-B" in mail.subject
        for fact in ("Site:     w1", "12.25 °C", "high limit 8 °C", "Limits:   2 to 8 °C"):
            assert fact in mail.text, fact
        assert f"alarms --config gateway.toml ack {alarm} --by NAME" in mail.text
        assert "Since:    " + time.strftime("%Y-%m-%d", time.gmtime()) in mail.text
        hook_body = next(m.body for m in site.hook.received if m.target == "on-call")
        assert hook_body["type"] == "pharmasync.alarm/v1" and hook_body["site"] == "w1"
        assert hook_body["alarm"] | {"since": 0} == {
            "id": alarm, "kind": "high", "box": BOX_ID, "label": "Vaccine fridge 2",
            "zone": "cold-room-B", "value_c": 12.25, "detail": hook_body["alarm"]["detail"],
            "since": 0, "low_c": 2.0, "high_c": 8.0,
        }  # fmt: skip

        result = site.esc.ack(alarm, "A. Jones")
        assert result.ok, result
        await wait_for(
            lambda: all(site.got(t, "acknowledged") == 1 for t in TARGETS),
            what="the acknowledgement told to everyone who was told",
        )
        told = Counter(site.messages())
        await asyncio.sleep(1.5)  # two more repeat periods: nothing more arrives
        assert Counter(site.messages()) == told
        ack_mail = next(m for m in site.smtp.received if m.notice == "acknowledged")
        assert "Acknowledged by A. Jones" in ack_mail.text
        assert not site.esc.ack(alarm, "B. Smith").ok  # already acknowledged: says by whom
        assert "by A. Jones" in str(site.esc.ack(alarm, "B. Smith"))
    # The acknowledgement is a gateway event queued for the cloud, beside raised/cleared.
    spool = Spool(tmp_path / "gw" / "spool.sqlite")
    events = _events(spool)
    spool.close()
    assert [state for _, state, _ in events] == ["raised", "acknowledged"]
    acked = events[1][2]
    assert acked["by"] == "A. Jones" and f"alarm {alarm} via" in acked["detail"]


def _events(spool: Spool) -> list[tuple[str, str, dict]]:
    """The alarm events queued for the cloud, signed (gateway/event.py), oldest first:
    (alarm kind, state, body)."""
    signed = [event.decode(record) for record in spool.unsent_events(1000)]
    return [
        (e.body["alarm"], e.kind.removeprefix("alarm-"), dict(e.body))
        for e in signed
        if e.kind.startswith("alarm-")
    ]


async def test_after_an_outage_each_level_is_sent_once_and_missed_repeats_are_not(
    tmp_path: Path,
) -> None:
    """A gateway that was off for 30 s (50 repeat periods) sends levels 2 and 3 once and only
    the latest repeat: no storm of the repeats it missed."""
    async with running_site(tmp_path / "gw") as site:
        await site.feed(5.0, 12.0)
        await wait_for(lambda: site.got("on-call", "raised") and site.got("alice", "raised"))
        # As if the alarm had been raised 30 s ago and the gateway down since level 1.
        site.esc.store.db.execute("UPDATE alarms SET raised_at = raised_at - 30")
        await wait_for(lambda: site.got("carol", "repeat") and site.got("bridge", "repeat"))
        assert Counter(site.messages()) == Counter(
            [(t, "raised") for t in TARGETS] + [("carol", "repeat"), ("bridge", "repeat")]
        )
        site.esc.ack(site.alarm_id(), "A. Jones")


async def test_a_cleared_alarm_stops_and_tells_only_those_already_told(tmp_path: Path) -> None:
    async with running_site(tmp_path / "gw") as site:
        await site.feed(5.0, 11.0)
        await wait_for(lambda: site.got("on-call", "raised") == 1 and site.got("alice", "raised"))
        await site.feed(7.0)  # <= 8 - 0.5: clears
        await wait_for(lambda: site.got("alice", "cleared") == 1, what="cleared e-mail")
        await wait_for(lambda: site.got("on-call", "cleared") == 1, what="cleared webhook")
        await asyncio.sleep(1.3)  # past levels 2 and 3: they were never due for anyone
        assert sorted(site.messages()) == sorted(
            [
                ("on-call", "raised"),
                ("alice", "raised"),
                ("on-call", "cleared"),
                ("alice", "cleared"),
            ]
        )
        cleared = next(m for m in site.smtp.received if m.notice == "cleared")
        assert "has cleared" in cleared.text
        snap = site.esc.snapshot()
        assert snap["alarms"][0]["cleared_at"] is not None and not snap["alarms"][0]["escalating"]


async def test_a_failing_webhook_is_retried_and_counted_and_does_not_delay_email(
    tmp_path: Path,
) -> None:
    async with running_site(tmp_path / "gw") as site:
        site.hook.fail["on-call"] = 3  # the on-call service is down for three attempts
        await site.feed(5.0, 12.0)
        t0 = time.time()
        await wait_for(lambda: site.got("on-call", "raised") == 1, what="the webhook after retries")
        at = {who(m.target): m.at for m in site.hook.received + site.smtp.received}
        assert at["alice"] - t0 < 0.5, "the e-mail went at once, whatever the webhook does"
        assert at["on-call"] - t0 >= 0.1 + 0.2 + 0.2, "retried with backoff (0.1, 0.2, 0.2 s)"
        assert site.hook.failed["on-call"] == 3 and site.esc.failed["on-call"] == 3
        assert site.esc.sent["alice"] == 1 and site.esc.sent["on-call"] == 1
        snap = await status.snapshot(status.Runtime(site.gw, escalation=site.esc))
        metrics = status.metrics_text(snap).decode()
        failed = 'pharmasync_gateway_notifications_total{result="failed",target="on-call"} 3.0'
        assert failed in metrics
        assert 'pharmasync_gateway_notifications_total{result="sent",target="alice"} 1.0' in metrics
        (row,) = [d for d in snap["notify"]["alarms"][0]["deliveries"] if d["target"] == "on-call"]
        assert row["state"] == "sent" and row["attempts"] == 4
        site.esc.ack(site.alarm_id(), "A. Jones")


def signed(alarm: str, by: str = "Dr. Q. A. Lead", **kw: Any) -> bytes:
    secret = kw.pop("secret", OWNER_SECRET)
    fields = {"gateway": schnorr.pubkey(GATEWAY_SECRET), "alarm": alarm, "by": by}
    fields |= {"at": int(time.time())} | kw
    return alarm_ack.sign(secret, alarm_ack.AlarmAck(**fields))


async def test_a_signed_ack_stops_escalation_and_forgeries_are_refused_and_counted(
    tmp_path: Path,
) -> None:
    async with running_site(tmp_path / "gw") as site:
        await site.feed(5.0, 13.0)
        await wait_for(lambda: site.got("alice", "raised") == 1)
        alarm = site.alarm_id()
        good = signed(alarm)
        forged = good.replace(b"Dr. Q. A. Lead", b"Dr. Q. A. Fake")
        refusals = {
            "bad signature": forged,
            "unauthorised key": signed(alarm, secret=bytes(31) + b"\x66"),
            "wrong gateway": signed(alarm, gateway=schnorr.pubkey(bytes(31) + b"\x67")),
            "unknown alarm": signed("00000000"),
            "dated in the future": signed(alarm, at=int(time.time()) + 3600),
            "malformed": b"[" * 2000,  # nested 2,000 deep: no RecursionError escapes
        }
        for reason, wire in refusals.items():
            result = site.esc.apply_signed_ack(wire)
            assert not result.ok and result.reason == reason, (reason, result)
        assert site.esc.store.alarm(alarm)["acked_at"] is None, "no refusal acknowledged it"
        applied = site.esc.apply_signed_ack(good)
        assert applied.ok and applied.alarm == alarm, applied
        replay = site.esc.apply_signed_ack(good)
        assert (replay.ok, replay.reason) == (False, "replayed")
        # Another valid signature for the same alarm: acknowledged already, says by whom.
        again = site.esc.apply_signed_ack(signed(alarm, by="Someone Else"))
        assert again.reason == "already acknowledged" and "Dr. Q. A. Lead" in again.detail
        expected = Counter(list(refusals)) + Counter(["replayed", "already acknowledged"])
        assert site.esc.refused == expected
        row = site.esc.store.alarm(alarm)
        assert row["acked_by"] == "Dr. Q. A. Lead"
        assert row["acked_via"] == "signed by " + schnorr.pubkey(OWNER_SECRET).hex()[:16]
        await wait_for(lambda: site.got("alice", "acknowledged") == 1)
        await asyncio.sleep(1.2)  # levels 2 and 3 would have been due: never sent
        assert site.got("bob", "raised") == site.got("carol", "raised") == 0


@asynccontextmanager
async def status_page(site: Site) -> AsyncIterator[str]:
    port = free_port()
    runner = web.AppRunner(status.make_app(status.Runtime(site.gw, escalation=site.esc)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_status_page_acknowledges_with_the_token_or_a_signed_ack(
    tmp_path: Path,
) -> None:
    async with running_site(tmp_path / "gw") as site, status_page(site) as url:
        await site.feed(5.0, 12.0)
        await wait_for(lambda: site.got("on-call", "raised") == 1)
        alarm = site.alarm_id()
        async with aiohttp.ClientSession() as http:
            page = await (await http.get(url + "/")).text()
            assert "<h2>Notifications</h2>" in page and alarm in page and "escalating" in page
            assert f"action='/alarms/{alarm}/ack'" in page
            cases = [
                ({"by": "Mallory", "token": "guess"}, 403, "bad token"),
                ({"by": "", "token": TOKEN}, 400, "malformed"),
                ({"by": "A. Jones"}, 400, "malformed"),
            ]
            for body, code, reason in cases:
                r = await http.post(f"{url}/alarms/{alarm}/ack", json=body)
                problem = await r.json(content_type=None)
                assert (r.status, problem["reason"]) == (code, reason), body
                assert r.content_type == "application/problem+json"
            r = await http.post(f"{url}/alarms/0badc0de/ack", json={"by": "A", "token": TOKEN})
            assert r.status == 404
            # The page's own form: a 303 back to the page, which names who acknowledged.
            form = {"by": "Night shift", "token": TOKEN}
            r = await http.post(f"{url}/alarms/{alarm}/ack", data=form, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == "/"
            page = await (await http.get(url + "/")).text()
            assert "acknowledged by Night shift (status page)" in page
            # A signed ack over HTTP: refused for the acknowledged alarm, with its reason.
            r = await http.post(f"{url}/alarms/ack-signed", data=signed(alarm))
            assert (r.status, (await r.json(content_type=None))["reason"]) == (
                409,
                "already acknowledged",
            )
            r = await http.post(f"{url}/alarms/ack-signed", data=b"{not json")
            assert r.status == 400
            metrics = await (await http.get(url + "/metrics")).text()
        assert 'pharmasync_gateway_alarm_acks_total{via="status page"} 1.0' in metrics
        assert 'pharmasync_gateway_alarm_acks_refused_total{reason="bad token"} 1.0' in metrics
        assert "pharmasync_gateway_alarms_escalating 0.0" in metrics


async def test_without_a_token_the_page_cannot_acknowledge(tmp_path: Path) -> None:
    async with running_site(tmp_path / "gw", ack_token="") as site, status_page(site) as url:
        await site.feed(5.0, 12.0)
        await wait_for(lambda: site.got("on-call", "raised") == 1)
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                f"{url}/alarms/{site.alarm_id()}/ack", json={"by": "A", "token": ""}
            )
            assert (r.status, (await r.json(content_type=None))["reason"]) == (403, "ack off")
            assert "action='/alarms/" not in await (await http.get(url + "/")).text()
        site.esc.ack(site.alarm_id(), "A. Jones")


async def test_the_cli_lists_and_acknowledges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pharmasync gateway alarms` works on the data folder of a running gateway."""
    from cloud.cli import main

    config = tmp_path / "gateway.toml"
    owner = schnorr.pubkey(OWNER_SECRET).hex()
    config.write_text(
        f'[gateway]\nsite = "w1"\ndata_dir = "gw"\n[notify]\nack_keys = ["{owner}"]\n'
    )
    async with running_site(tmp_path / "gw") as site:
        (tmp_path / "gw" / "gateway.key").write_text(GATEWAY_SECRET.hex())
        await site.feed(5.0, 12.0)
        await wait_for(lambda: site.got("on-call", "raised") == 1)
        alarm = site.alarm_id()
        assert main(["gateway", "alarms", "--config", str(config), "list"]) == 0
        listed = capsys.readouterr().out
        assert alarm in listed and "ESCALATING" in listed and "Vaccine fridge 2" in listed
        # A non-UTF-8 byte in argv arrives as a lone surrogate, which the spool cannot store.
        assert main(["gateway", "alarms", "--config", str(config), "ack", alarm, "--by", "\udcff"])
        assert "want text without lone surrogates" in capsys.readouterr().err
        with pytest.raises(SystemExit):  # argparse's usage error, not a traceback
            main(["gateway", "alarms", "--config", str(config), "ack", "\udcff", "--by", "x"])
        assert "invalid alarm_id value" in capsys.readouterr().err
        (tmp_path / "ack.json").write_bytes(signed(alarm))
        signed_args = ["gateway", "alarms", "--config", str(config), "ack-signed"]
        assert main([*signed_args, str(tmp_path / "ack.json")]) == 0
        assert (
            f"alarm {alarm}: acknowledged: by Dr. Q. A. Lead (signed by" in capsys.readouterr().out
        )
        assert main([*signed_args, str(tmp_path / "ack.json")]) == 1
        assert "replayed" in capsys.readouterr().err
        args = ["gateway", "alarms", "--config", str(config), "ack", alarm, "--by", "Ops"]
        assert main(args) == 1  # already acknowledged: the reason, not a traceback
        assert "already acknowledged: by Dr. Q. A. Lead" in capsys.readouterr().err
        # The running gateway picks up what the other process wrote.
        await wait_for(lambda: site.got("on-call", "acknowledged") == 1, what="picked up")
        assert main(["gateway", "alarms", "--config", str(config), "ack", "ffffffff", "--by", "x"])
        assert "unknown alarm" in capsys.readouterr().err
        assert main(["gateway", "alarms", "--config", str(config), "list", "--json"]) == 0
        (listed_alarm,) = json.loads(capsys.readouterr().out)
        assert listed_alarm["acked_by"] == "Dr. Q. A. Lead" and not listed_alarm["escalating"]


async def test_the_cli_says_why_without_a_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud.cli import main

    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nsite = "w1"\ndata_dir = "gw"\n')
    with pytest.raises(SystemExit) as exited:  # as _settings() does for a bad config
        main(["gateway", "alarms", "--config", str(config), "list"])
    assert exited.value.code == 1 and "no alarms yet" in capsys.readouterr().err
    assert main(["gateway", "alarms", "--config", str(config), "ack-signed", "nope.json"]) == 2
    assert "nope.json" in capsys.readouterr().err


E2E_CONFIG = """
[gateway]
site = "w1"
data_dir = "gw"
[mqtt]
port = {mqtt}
[batch]
max_age_s = 0.2
[uplink]
url = "http://127.0.0.1:{cloud}"  # nothing listens there: the cloud is down throughout
max_backoff_s = 1
[status]
port = {status}
[alarms.fast]
delay_consecutive_s = 0
[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
tick_s = 0.05
retry_min_s = 0.1
retry_max_s = 0.2
repeat_every_s = 0
[notify.targets]
on-call = "{hook}/on-call"
alice = "mailto:alice@w1.example"
bob = "mailto:bob@w1.example"
carol = "mailto:carol@w1.example"
bridge = "{hook}/bridge"
[[escalation]]
after_s = 0
notify = ["on-call", "alice"]
[[escalation]]
after_s = 5
notify = ["bob"]
[[escalation]]
after_s = 7
notify = ["carol", "bridge"]
"""


async def test_sigkill_mid_escalation_resumes_without_duplicates_with_the_cloud_down(
    mosquitto: Any, tmp_path: Path
) -> None:
    """`pharmasync gateway run` as deployed (a process, a broker, the cloud unreachable):
    an alarm's level 1 is sent, the gateway is SIGKILLed and restarted, and levels 2 and 3
    follow on time, each message once; then a CLI acknowledgement ends it."""
    import os
    import signal
    import sqlite3
    import sys

    import aiomqtt

    from cloud.cli import main
    from tests.conftest import REPO

    hook, smtp = WebhookReceiver(), SmtpReceiver()
    await hook.start()
    smtp.start()
    status_port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        E2E_CONFIG.format(
            mqtt=mosquitto.port,
            cloud=free_port(),
            status=status_port,
            smtp=smtp.port,
            hook=f"http://127.0.0.1:{hook.port}",
        )
    )
    (tmp_path / "gw").mkdir()
    reg = Registry(tmp_path / "gw" / "registry.json")
    reg.put(Box(BOX, "Vaccine fridge 2", "w1", zone="cold-room-B", profile="fast"))
    reg.close()
    site = Site(None, None, hook, smtp)  # type: ignore[arg-type]  # receivers only

    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cloud.cli", "gateway", "run", "--config", str(config),
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        async with aiohttp.ClientSession() as http:

            async def connected() -> bool:
                with suppress(aiohttp.ClientError):
                    r = await http.get(f"http://127.0.0.1:{status_port}/status.json")
                    return (await r.json())["mqtt"]["state"] == "connected"
                return False

            for _ in range(300):
                if await connected():
                    return proc
                await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not connect to the broker")

    def level_1_committed() -> bool:
        db = sqlite3.connect(f"file:{tmp_path / 'gw' / 'notify.sqlite'}?mode=ro", uri=True)
        try:
            sent = "SELECT count(*) FROM deliveries WHERE step = 'L1' AND state = 'sent'"
            return db.execute(sent).fetchone()[0] == 2
        except sqlite3.OperationalError:  # not created yet
            return False
        finally:
            db.close()

    proc = await start()
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mqtt:
            wire = reading.sign(BOX_SECRET, 0, int(time.time()), 1275, 5000)  # 12.75 °C
            await mqtt.publish(topics.reading("w1", BOX_ID), wire, qos=1)
        raised_at = time.time()
        await wait_for(level_1_committed, what="level 1 sent and committed")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(0.5)
        proc = await start()
        await wait_for(lambda: all(site.got(t, "raised") for t in TARGETS), 15, "levels 2, 3")
        await asyncio.sleep(0.5)  # anything doubled would have arrived by now
        assert Counter(site.messages()) == Counter((t, "raised") for t in TARGETS)
        bob = next(m.at for m in smtp.received if who(m.target) == "bob")
        assert bob - raised_at >= 5.0, "level 2 kept its time across the restart"
        alarm = next(m.alarm for m in hook.received)
        argv = ["gateway", "alarms", "--config", str(config), "ack", alarm, "--by", "Ops"]
        assert await asyncio.to_thread(main, argv) == 0
        await wait_for(lambda: all(site.got(t, "acknowledged") == 1 for t in TARGETS))
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"http://127.0.0.1:{status_port}/status.json")
            snap = await r.json()
        assert snap["uplink"]["last_success"] is None and snap["uplink"]["last_error"]
        assert snap["spool"]["unsent_batches"] >= 1, "the reading waits for the cloud"
        assert snap["notify"]["alarms"][0]["acked_by"] == "Ops"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
        await hook.stop()
        smtp.stop()
    spool = Spool(tmp_path / "gw" / "spool.sqlite")
    events = [(kind, state) for kind, state, _ in _events(spool)]
    spool.close()
    assert events == [("high", "raised"), ("high", "acknowledged")], "queued for the cloud"


def test_a_message_states_the_limits_the_zone_alarms_on_its_lots_too(tmp_path: Path) -> None:
    settings = gw_settings.from_dict({"gateway": {"site": "w1", "data_dir": str(tmp_path)}})
    tmp_path.mkdir(exist_ok=True)
    registry = Registry(tmp_path / "registry.json")
    registry.put(Box(BOX, "fridge", "w1"))
    store = AlarmStore(tmp_path / "notify.sqlite")
    try:
        escalation = Escalation(settings, schnorr.pubkey(GATEWAY_SECRET), registry, store)
        escalation.on_events([AlarmEvent(BOX_ID, "high", "raised", 1000.0, 6.0, "6 °C")])
        (row,) = store.alarms()
        assert (escalation.notice(row, "raised", 0).high_c) == 8.0  # the box's own profile
        on_lot = with_lots(AlarmProfile(), [LotProfile(AlarmProfile(high_c=5.0), 900, False)])
        escalation.profile_of = {BOX_ID: on_lot}.get  # the gateway's AlarmEngine.profile
        assert (escalation.notice(row, "raised", 0).high_c) == 5.0
    finally:
        store.close()
        registry.close()
