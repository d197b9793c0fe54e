"""MQTT topic names shared by boxes and gateways (MQTT 3.1.1 / 5, QoS 1).

    pharmasync/v1/<site>/<device-id>/reading   a box's signed readings (110 bytes each)
    pharmasync/v1/<site>/<device-id>/status    retained JSON status; the last will says offline
    pharmasync/v1/<site>/<device-id>/ack       the gateway's end-to-end acknowledgement
    pharmasync/v1/<site>/alarms                retained alarm state, raised by the gateway
    pharmasync/v1/<site>/gateway/cert          retained: the gateway's certificate, signed
                                               by the owner (device/cert.py)

<device-id> is the first 8 bytes of the box's x-only key in hex (16 characters): short
enough for topics and labels; the full key travels in every reading and is what counts.
"""

from binascii import hexlify

PREFIX = "pharmasync/v1"
ID_BYTES = 8


def device_id(key):
    """Return the 16-hex-character id of a box from its 32-byte x-only key."""
    return hexlify(key[:ID_BYTES]).decode()


def reading(site, dev_id):
    return "%s/%s/%s/reading" % (PREFIX, site, dev_id)


def status(site, dev_id):
    return "%s/%s/%s/status" % (PREFIX, site, dev_id)


def ack(site, dev_id):
    return "%s/%s/%s/ack" % (PREFIX, site, dev_id)


def cert(site):
    return "%s/%s/gateway/cert" % (PREFIX, site)


def alarms(site):
    return "%s/%s/alarms" % (PREFIX, site)


def check_site(site):
    """Raise ValueError unless `site` is usable as one topic level (no '/', '+', '#')."""
    if not site or len(site) > 64:
        raise ValueError("site: got %r, want 1..64 characters" % (site,))
    for ch in "/+#":
        if ch in site:
            raise ValueError("site: got %r, must not contain %r" % (site, ch))
