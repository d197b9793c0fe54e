"""Box configuration: defaults filled, every mistake named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device import config

OWNER = "ab" * 32


def test_minimal_config_gets_the_documented_defaults() -> None:
    cfg = config.validate({"site": "warehouse-1", "owner_key": OWNER})
    assert cfg["interval_s"] == 60 and cfg["power"] == "mains"
    assert cfg["mqtt"] == {
        "host": "127.0.0.1",
        "port": 1883,
        "user": None,
        "password": None,
        "keepalive": 60,
    }
    assert cfg["backlog_slots"] == 4096
    assert (cfg["ack_timeout_s"], cfg["max_resend_s"], cfg["insecure_acks"]) == (30, 1920, False)


def test_acks_are_signed_unless_insecure_acks_is_chosen() -> None:
    with pytest.raises(config.ConfigError, match="owner_key: missing"):
        config.validate({"site": "s"})
    assert config.validate({"site": "s", "insecure_acks": True})["owner_key"] is None
    with pytest.raises(config.ConfigError, match="gateway_key: replaced by owner_key"):
        config.validate({"site": "s", "gateway_key": OWNER, "owner_key": OWNER})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "site: missing"),
        ({"site": "a/b"}, "site: got 'a/b', must not contain '/'"),
        ({"site": "s", "interval_s": 1}, "interval_s: got 1, want a whole number 2..86400"),
        ({"site": "s", "interval_s": True}, "interval_s: got True"),
        ({"site": "s", "power": "solar"}, "power: got 'solar'"),
        ({"site": "s", "mqtt": {"port": 70000}}, "mqtt.port: got 70000"),
        ({"site": "s", "owner_key": "abc"}, "owner_key: got 'abc'"),
        ({"site": "s", "insecure_acks": 1}, "insecure_acks: got 1"),
        ({"site": "s", "max_resend_s": 0}, "max_resend_s: got 0"),
        ({"site": "s", "wifi": "home"}, "wifi: got 'home'"),
        ({"site": "s", "battery_adc_pin": "35"}, "battery_adc_pin: got '35'"),
        ({"site": "s", "colour": "red"}, "unknown key(s): colour"),
        ([], "config: got list"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(raw: object, message: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.validate(raw)
    assert str(err.value).startswith(message)


def test_load_reports_broken_json_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"site": ')
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load(str(path))
    path.write_text(json.dumps({"site": "w1", "label": "Cold room A", "owner_key": OWNER}))
    assert config.load(str(path))["label"] == "Cold room A"


def test_secret_key_file_must_be_64_hex_characters(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("ab" * 31 + "\n")
    with pytest.raises(config.ConfigError, match="got 62 characters, want 64"):
        config.load_secret(str(path))
    path.write_text("ab" * 32 + "\n")
    assert config.load_secret(str(path)) == bytes([0xAB]) * 32
