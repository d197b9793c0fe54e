"""Telling a person about an alarm: what the message says, and delivering it by webhook
(HTTP POST of JSON, aiohttp) or e-mail (SMTP with optional STARTTLS and login, aiosmtplib).

Pure delivery: one attempt per call, raising DeliveryError with the reason. Who is told
when, retries and acknowledgements are gateway/escalation.py's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import aiohttp
import aiosmtplib

from gateway.settings import NotifySettings

NoticeKind = Literal["raised", "repeat", "cleared", "acknowledged"]
WEBHOOK_TYPE = "pharmasync.alarm/v1"  # "type" of every webhook body

# What each alarm kind means to a person on the warehouse floor.
KIND_TEXT = {
    "high": "temperature too high",
    "low": "temperature too low",
    "cumulative": "too long out of range in total",
    "sensor": "sensor error",
    "silent": "box silent (no readings)",
    "mkt": "mean kinetic temperature too high",
}


class DeliveryError(Exception):
    """One delivery attempt failed; str() says why (status, refusal, timeout)."""


@dataclass(frozen=True)
class Notice:
    """Everything one message says about one alarm (the facts, not their wording)."""

    notice: NoticeKind
    alarm_id: str
    site: str
    gateway_key: str  # hex
    kind: str
    box_id: str  # device id (16 hex)
    label: str  # the box's label, or its id
    zone: str  # the box's zone, or ""
    value_c: float | None  # the reading (or MKT) that raised it
    detail: str  # the engine's detail: value, limit, clear threshold, how long
    since_s: float  # when it was raised (reading time)
    low_c: float  # the box's profile
    high_c: float
    level: int  # 1-based escalation level (repeats keep the last level's number)
    levels: int
    at_s: float  # when this notice was made
    ack_by: str = ""  # for "acknowledged": who
    ack_command: str = ""  # how to acknowledge at the gateway
    status_url: str = ""  # where the status page is, if it has one

    @property
    def where(self) -> str:
        return f"{self.label} (box {self.box_id})" + (f", zone {self.zone}" if self.zone else "")

    def subject(self) -> str:
        """One line for an e-mail subject or a chat notification."""
        what = KIND_TEXT.get(self.kind, self.kind)
        head = {
            "raised": "ALARM",
            "repeat": "ALARM (unacknowledged)",
            "cleared": "Cleared",
            "acknowledged": "Acknowledged",
        }[self.notice]
        return f"[PharmaSync {self.site}] {head}: {what} — {self.where}"

    def text(self) -> str:
        """The message body for people: site, zone, box, kind, reading, since, limit, how to ack."""
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since_s))
        minutes = max(0, int(self.at_s - self.since_s)) // 60
        reading = "—" if self.value_c is None else f"{self.value_c:g} °C"
        lines = [
            self.subject(),
            "",
            f"Site:     {self.site}",
            f"Box:      {self.where}",
            f"Alarm:    {KIND_TEXT.get(self.kind, self.kind)} ({self.kind}), id {self.alarm_id}",
            f"Reading:  {reading} — {self.detail}",
            f"Since:    {since} ({minutes} min ago)",
            f"Limits:   {self.low_c:g} to {self.high_c:g} °C",
        ]
        if self.notice in ("raised", "repeat"):
            lines += [f"Level:    {self.level} of {self.levels}", "", "To acknowledge:"]
            lines.append(f"  at the gateway: {self.ack_command}")
            if self.status_url:
                lines.append(f"  on the status page: {self.status_url} (needs the ack token)")
            lines.append("  or with a signed acknowledgement (PharmaSync/alarm-ack/v1)")
            lines.append("Until then this alarm is repeated and escalated.")
        elif self.notice == "cleared":
            lines += ["", "The condition has cleared: no more messages about this alarm."]
        else:
            lines += ["", f"Acknowledged by {self.ack_by}: no more escalation for this alarm."]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The webhook body: the facts as fields, plus `text` ready to show."""
        return {
            "type": WEBHOOK_TYPE,
            "notice": self.notice,
            "site": self.site,
            "gateway": self.gateway_key,
            "alarm": {
                "id": self.alarm_id,
                "kind": self.kind,
                "box": self.box_id,
                "label": self.label,
                "zone": self.zone,
                "value_c": self.value_c,
                "detail": self.detail,
                "since": self.since_s,
                "low_c": self.low_c,
                "high_c": self.high_c,
            },
            "level": self.level,
            "levels": self.levels,
            "time": self.at_s,
            "acknowledged_by": self.ack_by or None,
            "subject": self.subject(),
            "text": self.text(),
        }


async def post_webhook(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    """POST `body` as JSON to `url`; any 2xx is delivered. Raises DeliveryError otherwise.

    The session's timeout bounds the attempt.
    """
    try:
        async with session.post(url, json=body) as response:
            if not 200 <= response.status < 300:
                raise DeliveryError(f"HTTP {response.status} {response.reason or ''}".strip())
    except (aiohttp.ClientError, TimeoutError) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}".rstrip(": ")) from None


def email_message(notice: Notice, sender: str, to: str) -> EmailMessage:
    """Return the e-mail for `notice` from `sender` to `to` (plain text, UTF-8)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = notice.subject()
    message["X-PharmaSync-Alarm"] = notice.alarm_id
    message.set_content(notice.text())
    return message


async def send_email(settings: NotifySettings, message: EmailMessage) -> None:
    """Send `message` through the configured SMTP server (STARTTLS and login if set).

    Raises DeliveryError with the server's refusal or the connection error.
    """
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_user or None,
            password=settings.smtp_password or None,
            timeout=settings.timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from None
