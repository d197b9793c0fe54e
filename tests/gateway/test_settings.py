"""Gateway settings: the sample file loads as documented, every mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import settings
from tests.conftest import REPO


def test_the_sample_gateway_toml_loads_with_its_documented_values() -> None:
    s = settings.load(REPO / "hardware" / "gateway.toml")
    assert s.site == "warehouse-1" and s.data_dir == Path("/var/lib/pharmasync")
    assert s.batch.max_readings == 1024 and s.batch.max_age_s == 10.0
    assert s.client_id == "pharmasync-gateway-warehouse-1"
    assert s.uplink.url == "" and s.status.port == 8470
    assert (s.lots.follow, s.lots.interval_s, s.lots.max_backoff_s) == (True, 60.0, 600.0)
    # the sample shows every default: a file with just the site gives the same settings
    minimal = settings.from_dict(
        {"gateway": {"site": "warehouse-1", "data_dir": "/var/lib/pharmasync"}}, Path("/")
    )
    assert minimal == s


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "[gateway]: missing"),
        ({"gateway": {"site": "a/b"}}, "[gateway] site: got 'a/b', must not contain '/'"),
        ({"gateway": {"site": "s", "colour": 1}}, "[gateway] colour: unknown option"),
        ({"gateway": {"site": "s"}, "mqtt": {"port": 0}}, "[mqtt] port: got 0, want 1..65535"),
        ({"gateway": {"site": "s"}, "mqtt": {"port": "1883"}}, "[mqtt] port: got '1883', want int"),
        ({"gateway": {"site": "s"}, "batch": {"max_readings": 0}}, "[batch] max_readings: got 0"),
        ({"gateway": {"site": "s"}, "batch": {"max_age": 3}}, "[batch] max_age: unknown option"),
        ({"gateway": {"site": "s"}, "uplink": {"url": "ftp://x"}}, "[uplink] url: got 'ftp://x'"),
        (
            {"gateway": {"site": "s"}, "uplink": {"in_flight": 0}},
            "[uplink] in_flight: got 0, want 1..64",
        ),
        ({"gateway": {"site": "s"}, "uplink": {"in_flight": 65}}, "[uplink] in_flight: got 65"),
        (
            {"gateway": {"site": "s"}, "uplink": {"in_flight": 2.5}},
            "[uplink] in_flight: got 2.5, want int",
        ),
        (
            {"gateway": {"site": "s"}, "spool": {"warn_fraction": 2.0}},
            "[spool] warn_fraction: got 2.0",
        ),
        ({"gateway": {"site": "s"}, "extra": {}}, "unknown table(s): extra"),
        ({"gateway": {"site": "s", "sign_acks": "yes"}}, "[gateway] sign_acks: got 'yes'"),
        ({"gateway": {"site": "s", "certificate": 1}}, "[gateway] certificate: got 1"),
        ({"gateway": {"site": "s", "certificate": ""}}, "[gateway] certificate: got ''"),
        ({"gateway": {"site": "s"}, "lots": {"interval_s": 0}}, "[lots] interval_s: got 0.0"),
        ({"gateway": {"site": "s"}, "lots": {"follow": 1}}, "[lots] follow: got 1, want bool"),
        ({"gateway": {"site": "s"}, "lots": {"every": 1}}, "[lots] every: unknown option"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(raw: dict, message: str) -> None:
    with pytest.raises(settings.SettingsError) as err:
        settings.from_dict(raw)
    assert str(err.value).startswith(message)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[gateway\nsite = 1")
    with pytest.raises(settings.SettingsError, match=r"gateway\.toml: not valid TOML"):
        settings.load(path)


def test_the_certificate_path_is_relative_to_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nsite = "s"\ncertificate = "gw.cert"\n')
    assert settings.load(path).certificate == tmp_path / "gw.cert"
    assert settings.from_dict({"gateway": {"site": "s"}}).certificate is None
