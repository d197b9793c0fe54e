"""Real local receivers for the gateway's alarm messages: an aiohttp webhook server and an
aiosmtpd SMTP server, each on a free port, recording what arrives and when."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


@dataclass
class Received:
    """One message as a person would get it: to whom, when, and the facts."""

    target: str  # webhook path name, or the e-mail recipient
    at: float  # time.time() on arrival
    notice: str  # raised | repeat | cleared | acknowledged
    alarm: str
    subject: str
    text: str
    body: Any = None  # the webhook JSON, or the EmailMessage


class WebhookReceiver:
    """POST /<name> records the JSON body; `fail[name] = n` answers the next n with 500."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.fail: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def _hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            self.failed[name] = self.failed.get(name, 0) + 1
            return web.Response(status=500, text="receiver down")
        body = await request.json()
        self.received.append(
            Received(
                name,
                time.time(),
                body["notice"],
                body["alarm"]["id"],
                body["subject"],
                body["text"],
                body,
            )
        )
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class SmtpReceiver:
    """An aiosmtpd server (its own thread) keeping every message; optional LOGIN check."""

    def __init__(self, login: tuple[str, str] | None = None, **smtp: Any) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.login = login
        kwargs: dict[str, Any] = dict(smtp)
        if login is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False}
            kwargs.setdefault("auth_required", True)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:  # type: ignore[no-untyped-def]
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.login
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text = message.get_content()
        for rcpt in envelope.rcpt_tos:
            notice = _notice_of(message["Subject"])
            alarm = message["X-PharmaSync-Alarm"]
            self.received.append(
                Received(rcpt, time.time(), notice, alarm, message["Subject"], text, message)
            )
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _notice_of(subject: str) -> str:
    """The notice kind from an e-mail subject (notify.Notice.subject's heads)."""
    head = subject.split("] ", 1)[1].split(":", 1)[0]
    return {
        "ALARM": "raised",
        "ALARM (unacknowledged)": "repeat",
        "Cleared": "cleared",
        "Acknowledged": "acknowledged",
    }[head]


async def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll `check` every 20 ms until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(0.02)
