"""A box's configuration: one JSON file written by `pharmasync device provision`.

    {"site": "warehouse-1", "label": "Cold room A, shelf 3", "interval_s": 60,
     "power": "mains", "mqtt": {"host": "192.168.1.10", "port": 1883}, ...}

load() fills defaults and rejects anything wrong with a message naming the key, so a box
with a broken config says why at boot instead of misbehaving later.
"""

import json

from device import topics

DEFAULTS = {
    "label": "",
    "interval_s": 60,  # seconds between readings
    "power": "mains",  # "mains": stay connected; "battery": deep sleep between readings
    "publish_every": 10,  # battery: readings per radio wake-up
    "mqtt": {},
    "wifi": None,  # {"ssid": ..., "password": ...} on an ESP32
    "ntp_host": "pool.ntp.org",
    "dht_pin": 4,
    "battery_adc_pin": None,
    "ble": True,
    "backlog_slots": 4096,  # 450,560 bytes of flash: 68 h at 60 s
    "seq_block": 16,
    "owner_key": None,  # hex x-only key of the owner: trust gateways it certified
    "insecure_acks": False,  # True: accept acks nobody can verify (tests, no owner key)
    "ack_timeout_s": 30,  # resend unacknowledged readings after this long without an ack
    "max_resend_s": 1920,  # each resend that got no ack doubles the wait, up to this
    "max_backoff_s": 3600,  # longest wait between connection attempts
}
MQTT_DEFAULTS = {"host": "127.0.0.1", "port": 1883, "user": None, "password": None, "keepalive": 60}


class ConfigError(ValueError):
    """The configuration is unusable; str() names the key and says got/want."""


def _int(cfg, key, lo, hi):
    v = cfg[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError("%s: got %r, want a whole number %d..%d" % (key, v, lo, hi))


def validate(raw):
    """Return a complete config dict from `raw` (a dict). Raises ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError("config: got %s, want a JSON object" % type(raw).__name__)
    if "gateway_key" in raw:
        raise ConfigError(
            "gateway_key: replaced by owner_key (firmware 0.2 trusts the gateways its owner "
            "certified); provision again with --owner-pub"
        )
    unknown = [k for k in raw if k not in DEFAULTS and k not in ("site", "key")]
    if unknown:
        raise ConfigError("unknown key(s): %s" % ", ".join(sorted(unknown)))
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    if "site" not in cfg:
        raise ConfigError("site: missing, want the site name (e.g. warehouse-1)")
    try:
        topics.check_site(cfg["site"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(cfg["label"], str):
        raise ConfigError("label: got %r, want text" % (cfg["label"],))
    _int(cfg, "interval_s", 2, 86400)  # a DHT22 cannot be read faster than every 2 s
    _int(cfg, "publish_every", 1, 1440)
    _int(cfg, "dht_pin", 0, 48)
    _int(cfg, "backlog_slots", 16, 1 << 20)
    _int(cfg, "seq_block", 1, 4096)
    _int(cfg, "ack_timeout_s", 1, 86400)
    _int(cfg, "max_backoff_s", 1, 86400)
    _int(cfg, "max_resend_s", 1, 86400)
    if cfg["battery_adc_pin"] is not None:
        _int(cfg, "battery_adc_pin", 0, 48)
    if cfg["power"] not in ("mains", "battery"):
        raise ConfigError("power: got %r, want 'mains' or 'battery'" % (cfg["power"],))
    mqtt = dict(MQTT_DEFAULTS)
    if not isinstance(cfg["mqtt"], dict):
        raise ConfigError("mqtt: got %r, want an object with host and port" % (cfg["mqtt"],))
    mqtt.update(cfg["mqtt"])
    if not isinstance(mqtt["host"], str) or not mqtt["host"]:
        raise ConfigError("mqtt.host: got %r, want a host name or address" % (mqtt["host"],))
    if not isinstance(mqtt["port"], int) or not 1 <= mqtt["port"] <= 65535:
        raise ConfigError("mqtt.port: got %r, want 1..65535" % (mqtt["port"],))
    cfg["mqtt"] = mqtt
    wifi = cfg["wifi"]
    if wifi is not None and not (isinstance(wifi, dict) and isinstance(wifi.get("ssid"), str)):
        raise ConfigError('wifi: got %r, want {"ssid": ..., "password": ...}' % (wifi,))
    ok = cfg["owner_key"]
    if ok is not None and not (isinstance(ok, str) and len(ok) == 64 and _is_hex(ok)):
        raise ConfigError("owner_key: got %r, want 64 hex characters" % (ok,))
    if not isinstance(cfg["insecure_acks"], bool):
        raise ConfigError("insecure_acks: got %r, want true or false" % (cfg["insecure_acks"],))
    if ok is None and not cfg["insecure_acks"]:
        raise ConfigError(
            "owner_key: missing; want the owner's public key (hex), whose certified gateways "
            "may acknowledge, or insecure_acks: true to accept acks nobody can verify"
        )
    return cfg


def _is_hex(text):
    for ch in text:
        if ch not in "0123456789abcdefABCDEF":
            return False
    return True


def load(path):
    """Read and validate the JSON config at `path`. Raises ConfigError (or OSError)."""
    with open(path) as f:
        text = f.read()
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s)" % (path, e)) from None
    return validate(raw)


def load_secret(path):
    """Read the box's 32-byte secret key (hex text). Raises ConfigError if malformed."""
    with open(path) as f:
        text = f.read().strip()
    if len(text) != 64 or not _is_hex(text):
        raise ConfigError("%s: got %d characters, want 64 hex characters" % (path, len(text)))
    from binascii import unhexlify

    return unhexlify(text)
