"""The BLE control codec the box and the gateway share.

The GATT server itself (device/ble.py serve()) needs aioble and a Bluetooth controller,
neither of which exists on this machine: it stays untested here. What is tested is every
byte a gateway can write and how the box answers it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from device import ack, ble, cert, reading
from device.backlog import Backlog


def test_commands_round_trip() -> None:
    assert ble.decode_command(ble.encode_replay(42)) == (ble.OP_REPLAY, 42)
    signed = ack.encode([(0, 7)], bytes(32), bytes(31) + b"\x01")
    assert ble.decode_command(ble.encode_ack(signed)) == (ble.OP_ACK, signed)
    owner = bytes(31) + b"\x02"
    for site in ("s", "k" * 64):  # the shortest and the longest certificate
        c = cert.encode(owner, bytes(32), site, 0, 1)
        command = ble.encode_cert(c)
        assert ble.decode_command(command) == (ble.OP_CERT, c)
        assert len(command) <= ble.WRITE_MAX


def test_every_command_fits_one_write_at_the_box_mtu() -> None:
    # ATT: a write request carries MTU - 3 bytes of value (Bluetooth Core 5.3, Vol 3 F 3.4.5.1).
    assert ble.WRITE_MAX == ble.MTU - 3 == 244
    assert 1 + ack.MAX_SIZE == 243 <= ble.WRITE_MAX
    assert 1 + cert.MAX_SIZE == 203 <= ble.WRITE_MAX


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "command: empty write"),
        (b"\x04\x00", "opcode: got 0x04"),
        (b"\x01\x00\x00", "ack: got 2 bytes, want 82..242"),
        (b"\x01" + bytes(68), "ack: got 68 bytes, want 82..242"),  # a version-1 ack
        (b"\x03" + bytes(138), "cert: got 138 bytes, want 139..202"),
        (b"\x02\x00\x00\x00", "replay: got 4 bytes, want 5"),
        (b"\x02" + bytes(5), "replay: got 6 bytes, want 5"),
    ],
)
def test_malformed_commands_are_rejected_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ble.CommandError, match=message):
        ble.decode_command(data)


def test_replay_selects_pending_readings_from_a_seq(tmp_path: Path) -> None:
    backlog = Backlog(str(tmp_path / "b"), slots=16)
    secret = bytes(31) + b"\x03"
    for seq in (5, 6, 9, 10):
        backlog.append(reading.sign(secret, seq, 1793620800, 400, 5000, aux=bytes(32)))
    box = SimpleNamespace(backlog=backlog)
    assert [backlog.seq_at(i) for i in ble.pending_from(box, 7)] == [9, 10]
    assert ble.pending_from(box, 11) == []
    backlog.ack_ranges([(9, 9)])
    assert [backlog.seq_at(i) for i in ble.pending_from(box, 0)] == [5, 6, 10]


def test_uuids_are_distinct_and_in_the_service_base() -> None:
    uuids = {ble.SERVICE_UUID, ble.READING_UUID, ble.CONTROL_UUID, ble.STATUS_UUID}
    assert len(uuids) == 4
    assert all(u.endswith("-6a4b-4c5e-9a61-7068726d7331") for u in uuids)
    assert ble.MTU >= reading.SIZE + 3  # a whole reading fits one notification
    assert struct.calcsize(">BI") == 5


def test_the_ble_status_always_parses_and_says_which_acks_the_box_takes(tmp_path: Path) -> None:
    import json

    from device import config, firmware
    from device.board_sim import Board

    cfg = config.validate({"site": "s", "label": "L" * 200, "owner_key": "ab" * 32})
    box = firmware.Box(Board(str(tmp_path)), cfg, bytes(31) + b"\x09", 1)
    assert len(box.status()) > ble.STATUS_MAX  # the MQTT status would be cut
    status = json.loads(ble.ble_status(box))
    assert status["ack"] == 2 and status["gateway_error"] == "no certificate yet"
