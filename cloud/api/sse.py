"""Server-Sent Events framing (WHATWG HTML, "Server-sent events", §9.2: the
text/event-stream format), both ways: what GET /v1/feed/stream writes and what
`pharmasync feed --follow` reads.

A message is lines `field: value` ended by an empty line; `id` sets the stream's last event
id (a client sends it back as `Last-Event-ID` when it reconnects), `data` lines are joined by
"\\n", a line starting with ":" is a comment (our heartbeat), `retry` the reconnection delay
in ms. Lines end in LF (CR LF and CR are accepted when reading).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Final

CONTENT_TYPE: Final = "text/event-stream"
LAST_EVENT_ID: Final = "Last-Event-ID"


def event(event_id: int, data: str) -> bytes:
    """Return one message with an `id` and `data` (a line of its own per line of `data`)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"id: {event_id}\n{lines}\n".encode()


def comment(text: str) -> bytes:
    """Return a comment line and the empty line after it (clients ignore it)."""
    return f": {text}\n\n".encode()


def retry(ms: int) -> bytes:
    """Return a message setting the client's reconnection delay."""
    return f"retry: {ms}\n\n".encode()


@dataclass(frozen=True)
class Message:
    """One dispatched message: its id (None: none in this message) and data."""

    id: str | None
    data: str


class Decoder:
    """Reads a text/event-stream in chunks of any size; `feed` returns the messages
    completed. Comments, `retry` and unknown fields are skipped; a message without data is
    not dispatched (the standard's rule)."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")()  # a chunk may cut a character
        self._buffer = ""
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Message]:
        text = self._buffer + self._text.decode(chunk)
        held = "\r" if text.endswith("\r") else ""  # maybe the first half of a CR LF
        text = text.removesuffix("\r").replace("\r\n", "\n").replace("\r", "\n")
        *lines, rest = text.split("\n")
        self._buffer = rest + held
        out = []
        for line in lines:
            if line == "":
                if self._data:
                    out.append(Message(self._id, "\n".join(self._data)))
                self._id, self._data = None, []
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    self._data.append(value)
                elif name == "id":
                    self._id = value
        return out
