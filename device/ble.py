"""The box's Bluetooth LE service: the same signed readings over GATT, for gateways that
collect from boxes without Wi-Fi (a vehicle, a shipper) and for a phone at the dock.

    service  d1f0a000-6a4b-4c5e-9a61-7068726d7331  "PharmaSync reading service"
    reading  d1f0a001-...  read, notify   the newest reading; every new or replayed
                                          reading is notified (110 bytes; MTU >= 113)
    control  d1f0a002-...  write          commands from the gateway, first byte opcode:
               0x01 ACK     + a version-2 ack (device/ack.py, 82..242 bytes)
               0x02 REPLAY  + u32 from_seq: notify every pending reading with seq >= from_seq
               0x03 CERT    + the gateway's certificate (device/cert.py, 139..202 bytes),
                              written once per connection, before the first ACK
    status   d1f0a003-...  read           the status JSON (as on MQTT) if it fits 240 bytes, else
                                          a brief one (ble_status)

Every command fits one ATT write: at MTU 247 a write carries 244 bytes of value (3 bytes
of ATT header), and the longest command is 243 (ACK with 21 ranges).

The codec below runs anywhere (the gateway imports it); serve() needs MicroPython's
`aioble` (installed by `pharmasync device flash`) and a radio.
"""

import struct

from device import ack, cert

SERVICE_UUID = "d1f0a000-6a4b-4c5e-9a61-7068726d7331"
READING_UUID = "d1f0a001-6a4b-4c5e-9a61-7068726d7331"
CONTROL_UUID = "d1f0a002-6a4b-4c5e-9a61-7068726d7331"
STATUS_UUID = "d1f0a003-6a4b-4c5e-9a61-7068726d7331"
MTU = 247  # asked for at connection; a reading needs 110 + 3 bytes of ATT header
WRITE_MAX = MTU - 3  # bytes of value in one ATT write request
OP_ACK = 0x01
OP_REPLAY = 0x02
OP_CERT = 0x03
STATUS_MAX = 240
_ADV_INTERVAL_US = 250000


class CommandError(ValueError):
    """A control write that is not a valid command; str() says why."""


def encode_ack(ack_payload):
    """Return the control write acknowledging readings (ack_payload from device.ack.encode)."""
    return bytes([OP_ACK]) + ack_payload


def encode_replay(from_seq):
    """Return the control write asking the box to notify pending readings from `from_seq`."""
    return struct.pack(">BI", OP_REPLAY, from_seq)


def encode_cert(cert_bytes):
    """Return the control write presenting the gateway's certificate (device/cert.py)."""
    return bytes([OP_CERT]) + cert_bytes


def decode_command(data):
    """Return (opcode, argument): the ack or certificate bytes for OP_ACK and OP_CERT,
    from_seq for OP_REPLAY.

    Raises CommandError for an empty write, an unknown opcode or a wrong length.
    """
    if not data:
        raise CommandError("command: empty write")
    op = data[0]
    n = len(data) - 1
    if op == OP_ACK:
        if not ack.MIN_SIZE <= n <= ack.MAX_SIZE:
            raise CommandError("ack: got %d bytes, want %d..%d" % (n, ack.MIN_SIZE, ack.MAX_SIZE))
        return op, bytes(data[1:])
    if op == OP_CERT:
        if not cert.MIN_SIZE <= n <= cert.MAX_SIZE:
            raise CommandError(
                "cert: got %d bytes, want %d..%d" % (n, cert.MIN_SIZE, cert.MAX_SIZE)
            )
        return op, bytes(data[1:])
    if op == OP_REPLAY:
        if len(data) != 5:
            raise CommandError("replay: got %d bytes, want 5" % len(data))
        return op, struct.unpack_from(">I", data, 1)[0]
    raise CommandError("opcode: got 0x%02x, want 0x01 (ack), 0x02 (replay) or 0x03 (cert)" % op)


def ble_status(box):
    """Return the status JSON for the status characteristic: the MQTT status if it fits
    STATUS_MAX bytes, else the fields a gateway needs, so it always parses (a gateway takes a
    status cut short, as firmware 0.1 sent it, for that old firmware)."""
    full = box.status()
    if len(full) <= STATUS_MAX:
        return full
    import json

    brief = {
        "state": "online",
        "ack": 2,
        "seq": box.last_seq,
        "backlog": len(box.backlog),
        "gateway": box.gateway_site,
        "gateway_error": box.gateway_error,
    }
    return json.dumps(brief).encode()[:STATUS_MAX]


def pending_from(box, from_seq):
    """Return the backlog indexes of held, unacknowledged readings with seq >= from_seq,
    oldest first."""
    b = box.backlog
    return [i for i in range(b.find(from_seq), b.tail) if not b.is_acked(i)]


async def serve(box):
    """Advertise and serve one gateway at a time, for ever (MicroPython with aioble)."""
    import asyncio

    import aioble
    import bluetooth

    aioble.config(mtu=MTU)
    service = aioble.Service(bluetooth.UUID(SERVICE_UUID))
    reading_ch = aioble.Characteristic(
        service, bluetooth.UUID(READING_UUID), read=True, notify=True
    )
    control_ch = aioble.Characteristic(
        service, bluetooth.UUID(CONTROL_UUID), write=True, capture=True
    )
    status_ch = aioble.Characteristic(service, bluetooth.UUID(STATUS_UUID), read=True)
    aioble.register_services(service)
    name = "PS-" + box.id[:8]

    async def forward(conn):
        # Notify each reading as the box stores it, and whatever a REPLAY asks for.
        sent = box.backlog.tail
        while conn.is_connected():
            status_ch.write(ble_status(box))
            while sent < box.backlog.tail:
                if sent >= box.backlog.head:
                    wire = box.backlog.get(sent)
                    reading_ch.write(wire)
                    reading_ch.notify(conn, wire)
                sent += 1
            while box._resend:  # readings an ack showed the gateway has not stored
                i = box._resend.pop(0)
                if box.backlog.head <= i < box.backlog.tail and not box.backlog.is_acked(i):
                    reading_ch.notify(conn, box.backlog.get(i))
                    await asyncio.sleep_ms(20)
            await asyncio.sleep_ms(200)

    async def control(conn):
        while conn.is_connected():
            _, data = await control_ch.written()
            try:
                op, arg = decode_command(data)
            except CommandError as e:
                box.board.log("BLE command rejected: %s" % e)
                continue
            if op == OP_ACK:
                box.handle_ack(arg)
            elif op == OP_CERT:
                box.handle_cert(arg)
            else:
                for i in pending_from(box, arg):
                    reading_ch.notify(conn, box.backlog.get(i))
                    await asyncio.sleep_ms(20)  # let the controller drain its queue

    while True:
        conn = await aioble.advertise(
            _ADV_INTERVAL_US, name=name, services=[bluetooth.UUID(SERVICE_UUID)]
        )
        box.board.log("BLE: gateway %s connected" % (conn.device,))
        box.ble_connected = True
        tasks = [asyncio.create_task(forward(conn)), asyncio.create_task(control(conn))]
        try:
            await conn.disconnected(timeout_ms=None)
        finally:
            box.ble_connected = False
            for t in tasks:
                t.cancel()
