"""The sensor box's main loop, the same on an ESP32 (MicroPython) and a Raspberry Pi (CPython).

Measure, sign, keep, send, and forget a reading only when the gateway has acknowledged
it end to end. Everything platform-specific comes from a *board* object:

    board.data_dir                 folder for the box's state files
    board.dht(pin)                 a sensor driver: read() -> (celsius, percent)
    board.clock()                  (unix_seconds, synced); unsynced: monotonic seconds
    board.monotonic()              seconds, for intervals and timeouts
    board.battery_low()            True when the supply is low
    await board.network_up()       bring up Wi-Fi (or check the network); True when usable
    board.network_down()           turn the radio off (battery mode)
    board.mqtt_client(...)         an MQTT client with device.mqtt.MQTTClient's interface
    board.load_retained()          small dict kept across deep sleep (RTC memory), or None
    board.save_retained(d)
    board.deep_sleep(seconds)      battery mode: sleep, then boot again (never returns)
    board.log(text)

Readings taken while the box has no MQTT session carry FLAG_BACKLOG. Acknowledgements
(device/ack.py, version 2) list the ranges of seqs the gateway has stored; the box trusts
them only when signed by a gateway its owner certified (device/cert.py: the certificate
arrives once per session). The box forgets what they cover and at once resends what it
holds between them (a reading lost on the way). It resends every held reading after each
reconnect and when a resend got no ack for a while: ack_timeout_s (30 s) at first,
doubling after each resend that got none, up to max_resend_s, so a site coming back from
an outage is not flooded by every box at once. The gateway sees each reading at least
once and acknowledges duplicates again; it never sees a seq reused (device/seqstore.py).
"""

import asyncio
import json
import random
from binascii import unhexlify

from device import ack, aio, cert, reading, schnorr, topics
from device.backlog import MISSING_MAX, Backlog
from device.sensor import Sensor
from device.seqstore import SeqStore

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = "0.2.0"
ACK_VERSION = const(2)  # the only acknowledgement this firmware accepts (in the status)
GATEWAYS_MAX = const(4)  # certified gateway keys remembered (one per site visited lately)
# QoS 1 publishes in flight at once when flushing the backlog: each costs ~1 KB of RAM on
# an ESP32, and 8 already flush a 1,000-reading backlog in well under a second on a LAN.
WINDOW = const(8)
STATUS_EVERY = const(10)  # republish the retained status every this many readings
POLL_S = const(1)  # how often an idle sender checks its connection and the ack timer
ACK_WAIT_S = const(2)  # after subscribing, wait this long for the retained ack
MISSING_TRIES = const(3)  # resends of one reading an ack showed missing


class Box:
    """One sensor box: its identity, state files, sensor and link."""

    def __init__(self, board, cfg, secret, interval=None):
        self.board = board
        self.cfg = cfg
        self.secret = secret
        self.key = schnorr.pubkey(secret)
        self.id = topics.device_id(self.key)
        site = cfg["site"]
        self.topic_reading = topics.reading(site, self.id)
        self.topic_status = topics.status(site, self.id)
        self.topic_ack = topics.ack(site, self.id)
        self.topic_cert = topics.cert(site)
        ok = cfg["owner_key"]
        self.owner_key = unhexlify(ok) if ok else None
        # gateway id -> key of gateways whose certificate verified; None: insecure_acks
        # without an owner key, every well-formed ack is believed.
        self.gateways = {} if self.owner_key else None
        self.gateway_site = None  # site of the last gateway whose certificate verified
        self.gateway_error = None if self.gateways is None else "no certificate yet"
        # Simulated boxes may run faster than a real DHT22 can be read.
        self.interval = cfg["interval_s"] if interval is None else interval
        data = board.data_dir
        self.retained = board.load_retained() or {}
        self.seq = SeqStore(data + "/seq", cfg["seq_block"], self.retained.get("seq"))
        self.backlog = Backlog(data + "/backlog", cfg["backlog_slots"])
        self.sensor = Sensor(board.dht(cfg["dht_pin"]))
        self.online = False  # an MQTT session is up
        self.ble_connected = False  # a gateway is connected over BLE (device/ble.py)
        self.last_seq = -1  # newest seq this box has signed (this boot)
        self.acked = -1  # highest seq the gateway acknowledged (this boot)
        self.taken = 0
        self.rejected_acks = 0
        self.rejected_certs = 0
        self.resends = 0  # resends of the whole backlog after silence
        self.missing_resent = 0  # readings resent because an ack showed them missing
        self._sent = self.backlog.head  # next backlog index to publish
        self._resend = []  # backlog indexes to publish before the next new ones
        self._resent_at = {}  # index -> (when it was last resent as missing, how often)
        self.resend_wait = cfg["ack_timeout_s"]  # doubles per unanswered resend
        self._last_ack = board.monotonic()
        self._got_ack = asyncio.Event()
        self._new = asyncio.Event()
        self._status_due = True
        self._connected = False

    # -- measuring -------------------------------------------------------------------

    async def take_reading(self):
        """Measure, sign and store one reading durably; return its wire bytes."""
        temperature, humidity, ok = await self.sensor.measure()
        now, synced = self.board.clock()
        flags = 0
        if not ok:
            flags |= reading.FLAG_SENSOR_ERROR
        if not synced:
            flags |= reading.FLAG_CLOCK_UNSYNCED
        if self.board.battery_low():
            flags |= reading.FLAG_BATTERY_LOW
        if not (self.online or self.ble_connected):
            flags |= reading.FLAG_BACKLOG
        seq = self.seq.next()
        # Before using seq, so a crash after this point can never hand it out again.
        self.retained["seq"] = self.seq.peek()
        self.board.save_retained(self.retained)
        wire = reading.sign(self.secret, seq, now & 0xFFFFFFFF, temperature, humidity, flags)
        self.backlog.append(wire)
        self.last_seq = seq
        self.taken += 1
        if self.taken % STATUS_EVERY == 0:
            self._status_due = True
        self._new.set()
        return wire

    async def sense_forever(self, count=None):
        """Take a reading every interval (`count` readings, or forever)."""
        while count is None or count > 0:
            started = self.board.monotonic()
            await self.take_reading()
            if count is not None:
                count -= 1
            rest = self.interval - (self.board.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    # -- sending ---------------------------------------------------------------------

    def status(self, state="online"):
        """Return the retained status message (JSON bytes)."""
        return json.dumps(
            {
                "state": state,
                "label": self.cfg["label"],
                "seq": self.last_seq,
                "acked": self.acked,
                "backlog": len(self.backlog),
                "dropped": self.backlog.dropped,
                "sensor_errors": self.sensor.errors,
                "rejected_acks": self.rejected_acks,
                "rejected_certs": self.rejected_certs,
                "ack": ACK_VERSION,
                "gateway": self.gateway_site,
                "gateway_error": self.gateway_error,
                "battery_low": self.board.battery_low(),
                "clock_synced": self.board.clock()[1],
                "interval_s": self.interval,
                "fw": VERSION,
            }
        ).encode()

    def on_message(self, topic, payload, retained=False):
        """MQTT: an acknowledgement on the box's ack topic or a gateway certificate on the
        site's cert topic (anything else is ignored)."""
        if topic == self.topic_ack:
            self.handle_ack(payload)
        elif topic == self.topic_cert:
            self.handle_cert(payload)

    def handle_cert(self, payload):
        """Trust the gateway key in `payload` if the owner certified it and it is valid now;
        otherwise count it and say why in the status (held readings stay held)."""
        if self.gateways is None:
            return  # insecure_acks: nothing to check acks against
        now, synced = self.board.clock()
        try:
            c = cert.verify(payload, self.owner_key, now if synced else None)
        except cert.CertError as e:
            self.rejected_certs += 1
            self.gateway_error = "certificate rejected: %s" % e
            self._status_due = True
            self.board.log(self.gateway_error)
            return
        if len(self.gateways) >= GATEWAYS_MAX:
            self.gateways = {}
        self.gateways[ack.gateway_id(c.gateway)] = c.gateway
        self.gateway_site = c.site
        self.gateway_error = None
        self._status_due = True

    def handle_ack(self, payload):
        """Forget the readings a version-2 ack covers and resend those it shows missing
        (ack bytes from MQTT or BLE); count and ignore a malformed, forged or impossible one."""
        try:
            ranges = ack.decode(payload, self.key, self.gateways)
        except ack.AckError as e:
            self.rejected_acks += 1
            if self.gateways is not None and not self.gateways:
                self.gateway_error = "ack rejected: no verified gateway certificate"
                self._status_due = True
            self.board.log("ack rejected: %s" % e)
            return
        newest = max(self.last_seq, self.seq.peek() - 1)
        top = ranges[-1][1]
        if top > newest:
            # Acknowledging a reading this box never signed: forged or confused, ignore it.
            self.rejected_acks += 1
            self.board.log("ack rejected: seq %d is beyond the newest reading %d" % (top, newest))
            return
        forgotten, missing = self.backlog.ack_ranges(ranges)
        now = self.board.monotonic()
        if forgotten:
            self._last_ack = now
            self.resend_wait = self.cfg["ack_timeout_s"]  # the gateway answers again
        if top > self.acked:
            self.acked = top
        self._got_ack.set()
        if missing:
            self._queue_missing(missing, now)

    def _queue_missing(self, missing, now):
        # A reading the gateway has not stored although it stored later ones was lost on the
        # way: resend it now, but not again within resend_wait (it may be in flight), and at
        # most MISSING_TRIES times: one the gateway refuses for good (say its time is
        # implausible) stays held, counted in the backlog, but stops costing airtime.
        seen = self._resent_at
        for i in missing:
            t, n = seen.get(i, (None, 0))
            if n < MISSING_TRIES and (t is None or now - t >= self.resend_wait):
                if i not in self._resend:
                    self._resend.append(i)
                    seen[i] = (now, n + 1)
        if len(seen) > 2 * MISSING_MAX:
            head = self.backlog.head
            for i in [i for i in seen if i < head]:
                del seen[i]  # forgotten or dropped: no longer held
            if len(seen) > 2 * MISSING_MAX:
                seen.clear()
        if self._resend:
            self._new.set()

    async def _publish_window(self, client):
        """Publish up to WINDOW held, unacknowledged readings at once (those an ack showed
        missing first); return when all are PUBACKed."""
        b = self.backlog
        batch = []
        while self._resend and len(batch) < WINDOW:
            i = self._resend.pop(0)
            if b.head <= i < b.tail and not b.is_acked(i):
                batch.append(b.get(i))
                self.missing_resent += 1
        while self._sent < b.tail and len(batch) < WINDOW:
            if not b.is_acked(self._sent):
                batch.append(b.get(self._sent))
            self._sent += 1
        await asyncio.gather(*[client.publish(self.topic_reading, w, 1) for w in batch])

    async def _pump(self, client, until_empty=False):
        """Send held readings in order while connected; resend them all when no ack came
        for resend_wait (doubling each time, up to max_resend_s). With `until_empty`, return
        once every reading is acknowledged (battery mode)."""
        while client.connected:
            if until_empty and not len(self.backlog) and not self._status_due:
                return
            if self._status_due:
                self._status_due = False
                await client.publish(self.topic_status, self.status(), 1, True)
            if self._sent < self.backlog.head:
                self._sent = self.backlog.head  # acknowledged or dropped meanwhile
            if self._resend or self._sent < self.backlog.tail:
                await self._publish_window(client)
                continue
            self._new.clear()
            try:
                await aio.wait_for(self._new.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            silent = self.board.monotonic() - self._last_ack
            if len(self.backlog) and self._sent >= self.backlog.tail and silent >= self.resend_wait:
                self.board.log(
                    "no ack for %ds: resending %d readings" % (silent, len(self.backlog))
                )
                self.resends += 1
                self._sent = self.backlog.head
                self._last_ack = self.board.monotonic()
                self.resend_wait = min(self.cfg["max_resend_s"], self.resend_wait * 2)

    async def session(self, until_empty=False):
        """Connect, subscribe to acks, send until the connection drops (or, `until_empty`,
        until everything is acknowledged). Raises on failure."""
        mqtt = self.cfg["mqtt"]
        client = self.board.mqtt_client(
            "ps-" + self.id,
            mqtt["host"],
            mqtt["port"],
            mqtt["user"],
            mqtt["password"],
            mqtt["keepalive"],
            (self.topic_status, self.status("offline"), 1, True),
        )
        client.on_message = self.on_message
        await client.connect()
        self._connected = True
        try:
            self._got_ack.clear()
            await client.subscribe(self.topic_cert, 1)  # retained: once per session
            await client.subscribe(self.topic_ack, 1)
            self.online = True
            self._status_due = True
            # The retained ack (after the certificate) says what the gateway already has:
            # wait a moment for it, so what was stored is not sent again.
            if len(self.backlog):
                try:
                    await aio.wait_for(self._got_ack.wait(), ACK_WAIT_S)
                except asyncio.TimeoutError:
                    pass
            self._sent = self.backlog.head  # whatever was not acknowledged goes again
            self._last_ack = self.board.monotonic()
            self.board.log("connected to %s:%d" % (mqtt["host"], mqtt["port"]))
            await self._pump(client, until_empty)
        finally:
            self.online = False
            client.close()

    async def link_forever(self):
        """Keep an MQTT session up, reconnecting with capped exponential backoff and jitter."""
        backoff = 1
        cap = self.cfg["max_backoff_s"]
        while True:
            self._connected = False
            try:
                if await self.board.network_up():
                    await self.session()
            except Exception as e:  # a link failure must never stop the box measuring
                self.board.log("link down: %r" % (e,))
            if self._connected:
                backoff = 1  # the broker was reachable: start over with short waits
            delay = min(cap, backoff) * (0.5 + random.random())
            backoff = min(cap, backoff * 2)
            await asyncio.sleep(delay)

    async def run(self, count=None, drain_s=0):
        """Run the box: measure every interval and keep the link up (mains power). After
        `count` readings (None: never), wait up to drain_s for them to be acknowledged."""
        self.board.log(
            "box %s (%s) at site %s, every %ss"
            % (self.id, self.cfg["label"], self.cfg["site"], self.interval)
        )
        link = asyncio.create_task(self.link_forever())
        try:
            await self.sense_forever(count)
            deadline = self.board.monotonic() + drain_s
            while len(self.backlog) and self.board.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            link.cancel()
            try:
                await link
            except asyncio.CancelledError:
                pass

    # -- battery mode ----------------------------------------------------------------

    async def wake(self):
        """One battery-mode wake-up: take a reading, and every publish_every wakes (times
        the outage backoff) turn the radio on, flush the backlog until acknowledged, and
        turn it off. Returns the seconds to deep-sleep before the next wake."""
        started = self.board.monotonic()
        await self.take_reading()
        r = self.retained
        r["wakes"] = r.get("wakes", 0) + 1
        backoff = r.get("backoff", 1)
        if r["wakes"] >= self.cfg["publish_every"] * backoff:
            r["wakes"] = 0
            flushed = False
            try:
                if await self.board.network_up():
                    budget = max(10, self.cfg["ack_timeout_s"])
                    await aio.wait_for(self.session(until_empty=True), budget)
                    flushed = not len(self.backlog)
            except Exception as e:  # broker or network down: keep measuring, try later
                self.board.log("flush failed: %r" % (e,))
            self.board.network_down()
            # Double the gap between radio attempts during an outage, up to max_backoff_s,
            # so a box does not drain its battery retrying a dead backend every few minutes.
            cap = max(1, self.cfg["max_backoff_s"] // (self.interval * self.cfg["publish_every"]))
            r["backoff"] = 1 if flushed else min(cap, backoff * 2)
        self.board.save_retained(r)
        return max(0, self.interval - (self.board.monotonic() - started))
