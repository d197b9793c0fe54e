"""A load generator that is not the bottleneck: pre-built MQTT 3.1.1 QoS 1 PUBLISH packets
written in bulk on several raw TCP connections, one sender and one PUBACK-counting reader
thread per connection (socket calls release the GIL; no per-message Python work happens
while the clock runs).

    python bench/mqtt_loadgen.py PORT SITE WIRES.hex [CONNECTIONS]

WIRES.hex holds one signed reading per line, in hex; each box's readings go out on one
connection (boxes dealt round-robin), in order, on the box's topic
pharmasync/v1/SITE/<device id>/reading. Prints one line of JSON: "start" (Unix time
of the first byte sent) and "published" (of the last PUBACK received), and "readings".
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time

CHUNK = 512  # packets written per sendall
WINDOW = 32_768  # PUBACKs outstanding per connection at most (packet ids are 16-bit)


def _remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer (3.1.1 §2.2.3)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str) -> bytes:
    """CONNECT, protocol level 4, clean session, keep-alive 60 s."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(cid)) + cid
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 (first byte 0x32) with the given packet id."""
    t = topic.encode()
    body = struct.pack(">H", len(t)) + t + struct.pack(">H", packet_id) + payload
    return b"\x32" + _remaining_length(len(body)) + body


class Connection:
    """One TCP connection to the broker with its packets built before the clock starts."""

    def __init__(self, port: int, name: str, packets: list[bytes]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(name))
        connack = self.sock.recv(4)
        if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
            raise SystemExit(f"{name}: broker refused the connection: {connack!r}")
        self.chunks = [b"".join(packets[i : i + CHUNK]) for i in range(0, len(packets), CHUNK)]
        self.total = len(packets)
        self.sent = 0
        self.acked = 0
        self.done_at = 0.0
        self.room = threading.Condition()

    def send(self) -> None:
        for chunk in self.chunks:
            with self.room:
                self.room.wait_for(lambda: self.sent - self.acked < WINDOW)
            self.sock.sendall(chunk)
            self.sent += min(CHUNK, self.total - self.sent)

    def read_acks(self) -> None:
        got = 0  # bytes of PUBACKs: each is 4 bytes (0x40 0x02 id id)
        while got < 4 * self.total:
            data = self.sock.recv(1 << 16)
            if not data:
                raise SystemExit("broker closed the connection")
            got += len(data)
            with self.room:
                self.acked = got // 4
                self.room.notify()
        self.done_at = time.time()


def main() -> None:
    port, site, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    n_conn = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    with open(path) as f:
        wires = [bytes.fromhex(line) for line in f if line.strip()]
    per_conn: list[list[bytes]] = [[] for _ in range(n_conn)]
    conn_of: dict[bytes, int] = {}  # box key -> its connection, boxes dealt round-robin
    for w in wires:
        # device id: the first 8 bytes of the key, in hex (device/topics.py)
        topic = f"pharmasync/v1/{site}/{w[1:9].hex()}/reading"
        packets = per_conn[conn_of.setdefault(w[1:33], len(conn_of) % n_conn)]
        packets.append(publish_packet(topic, w, len(packets) % 65535 + 1))
    conns = [Connection(port, f"loadgen-{time.time_ns()}-{c}", p) for c, p in enumerate(per_conn)]
    threads = [threading.Thread(target=c.read_acks) for c in conns]
    threads += [threading.Thread(target=c.send) for c in conns]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published = max(c.done_at for c in conns)
    print(json.dumps({"start": start, "published": published, "readings": len(wires)}))
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main()
