"""Delivering one alarm message (gateway/notify.py) to real local servers: an aiohttp webhook
receiver and aiosmtpd, with login and with STARTTLS (a throwaway CA made here, trusted
through SSL_CERT_FILE for the one test)."""

from __future__ import annotations

import datetime
import ipaddress
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import notify
from gateway.settings import NotifySettings
from tests.conftest import free_port
from tests.gateway.notify_servers import SmtpReceiver, WebhookReceiver

NOTICE = notify.Notice(
    notice="raised",
    alarm_id="3f2a9c1e",
    site="warehouse-1",
    gateway_key="ab" * 32,
    kind="low",
    box_id="7754b4fa0e8aced0",
    label="Vaccine fridge 2",
    zone="cold-room-B",
    value_c=0.5,
    detail="0.5 °C; low limit 2 °C, clears at 2.5 °C; held 900 s",
    since_s=1793620800.0,
    low_c=2.0,
    high_c=8.0,
    level=2,
    levels=3,
    at_s=1793620800.0 + 1800,
    ack_command="pharmasync gateway alarms --config gateway.toml ack 3f2a9c1e --by NAME",
    status_url="http://gw.w1.example:8470/",
)


def test_the_message_says_what_a_warehouse_person_needs() -> None:
    assert NOTICE.subject() == (
        "[PharmaSync warehouse-1] ALARM: temperature too low — "
        "Vaccine fridge 2 (box 7754b4fa0e8aced0), zone cold-room-B"
    )
    text = NOTICE.text()
    for line in (
        "Site:     warehouse-1",
        "Box:      Vaccine fridge 2 (box 7754b4fa0e8aced0), zone cold-room-B",
        "Alarm:    temperature too low (low), id 3f2a9c1e",
        "Reading:  0.5 °C — 0.5 °C; low limit 2 °C, clears at 2.5 °C; held 900 s",
        "Since:    2026-11-02 12:00:00 UTC (30 min ago)",
        "Limits:   2 to 8 °C",
        "Level:    2 of 3",
        "  at the gateway: pharmasync gateway alarms --config gateway.toml ack 3f2a9c1e --by NAME",
        "  on the status page: http://gw.w1.example:8470/ (needs the ack token)",
    ):
        assert line in text.splitlines(), line
    cleared = replace(NOTICE, notice="cleared").text()
    assert "has cleared" in cleared and "To acknowledge" not in cleared
    acked = replace(NOTICE, notice="acknowledged", ack_by="A. Jones")
    assert acked.subject().startswith("[PharmaSync warehouse-1] Acknowledged: ")
    assert acked.to_json()["acknowledged_by"] == "A. Jones"


async def test_webhook_delivery_and_its_failures() -> None:
    hook = WebhookReceiver()
    await hook.start()
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await notify.post_webhook(http, hook.url("on-call"), NOTICE.to_json())
            (got,) = hook.received
            assert got.body == NOTICE.to_json() and got.alarm == "3f2a9c1e"
            hook.fail["on-call"] = 1
            with pytest.raises(notify.DeliveryError, match="HTTP 500"):
                await notify.post_webhook(http, hook.url("on-call"), NOTICE.to_json())
            closed = f"http://127.0.0.1:{free_port()}/x"
            with pytest.raises(notify.DeliveryError, match="ClientConnectorError"):
                await notify.post_webhook(http, closed, NOTICE.to_json())
    finally:
        await hook.stop()


# The test server takes AUTH without TLS (the login is what is tested here); it warns so.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_with_login() -> None:
    smtp = SmtpReceiver(login=("gateway", "s3cret"))
    smtp.start()
    try:
        config = NotifySettings(
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_user="gateway", smtp_password="s3cret"
        )
        message = notify.email_message(NOTICE, "gw@w1.example", "qa@w1.example")
        await notify.send_email(config, message)
        (got,) = smtp.received
        assert got.target == "qa@w1.example" and got.alarm == "3f2a9c1e"
        assert " ".join(got.subject.split()) == NOTICE.subject()  # a long subject is folded
        assert got.text.replace("\r\n", "\n") == NOTICE.text()
        with pytest.raises(notify.DeliveryError, match="535"):  # authentication failed
            await notify.send_email(replace(config, smtp_password="wrong"), message)
        with pytest.raises(notify.DeliveryError):  # the server insists on a login
            await notify.send_email(replace(config, smtp_user=""), message)
        assert len(smtp.received) == 1
    finally:
        smtp.stop()
    with pytest.raises(notify.DeliveryError, match="SMTPConnect"):
        await notify.send_email(config, message)  # the server is gone


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pharmasync test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_email_over_starttls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    smtp = SmtpReceiver(tls_context=context, require_starttls=True)
    smtp.start()
    try:
        config = NotifySettings(smtp_host="127.0.0.1", smtp_port=smtp.port, timeout_s=5)
        message = notify.email_message(NOTICE, "gw@w1.example", "qa@w1.example")
        with pytest.raises(notify.DeliveryError):  # the server refuses mail before STARTTLS
            await notify.send_email(config, message)
        with pytest.raises(notify.DeliveryError):  # STARTTLS, but the certificate is unknown
            await notify.send_email(replace(config, smtp_starttls=True), message)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the site's CA, as a system trusts it
        started = time.monotonic()
        await notify.send_email(replace(config, smtp_starttls=True), message)
        assert time.monotonic() - started < 5
        (got,) = smtp.received
        assert got.alarm == NOTICE.alarm_id
    finally:
        smtp.stop()
