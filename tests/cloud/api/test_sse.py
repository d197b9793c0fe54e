"""Server-Sent Events framing (cloud/api/sse.py) against the WHATWG text/event-stream rules:
exact bytes written, and a decoder that reassembles messages from chunks cut anywhere,
skips comments and retry lines, joins data lines and accepts CR LF."""

from __future__ import annotations

from cloud.api import sse


def test_exact_bytes() -> None:
    assert sse.event(7, '{"a": 1}') == b'id: 7\ndata: {"a": 1}\n\n'
    assert sse.event(1, "x\ny") == b"id: 1\ndata: x\ndata: y\n\n"
    assert sse.comment("heartbeat") == b": heartbeat\n\n"
    assert sse.retry(3000) == b"retry: 3000\n\n"


def test_the_decoder_reassembles_messages_cut_anywhere() -> None:
    stream = sse.retry(3000) + sse.event(1, "one → two") + sse.comment("hb")
    stream += sse.event(2, "a\nb").replace(b"\n", b"\r\n")
    for size in range(1, len(stream) + 1):
        decoder, found = sse.Decoder(), []
        for start in range(0, len(stream), size):
            found += decoder.feed(stream[start : start + size])
        assert found == [sse.Message("1", "one → two"), sse.Message("2", "a\nb")], size


def test_crlf_no_space_and_messages_without_data() -> None:
    decoder = sse.Decoder()
    assert decoder.feed(b"id:5\r\ndata:x\r\n\r\nid: 6\n\n: only a comment\n\n") == [
        sse.Message("5", "x")
    ]
