"""The gateway's settings: one TOML file (see hardware/gateway.toml for every option).

load() reads it, fills defaults and rejects anything wrong with a message that names the
option, so a gateway with a broken file says why at start instead of misbehaving later.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from device import topics
from gateway.alarms import AlarmError, AlarmProfile


class SettingsError(ValueError):
    """The settings file is unusable; str() names the option and says got/want."""


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    user: str | None = None
    password: str | None = None
    client_id: str = ""  # default: pharmasync-gateway-<site>
    keepalive: int = 30


@dataclass(frozen=True)
class VerifySettings:
    max_future_s: int = 120  # a synced box's reading may be this far ahead of our clock
    max_age_s: int = 7 * 86400  # and this far behind (a box's backlog holds ~68 h)


@dataclass(frozen=True)
class BatchSettings:
    max_readings: int = 1024
    max_age_s: float = 10.0


@dataclass(frozen=True)
class SpoolSettings:
    max_bytes: int = 2_000_000_000  # stop accepting (boxes keep their readings) above this
    warn_fraction: float = 0.8  # raise the "spool nearly full" alarm above this fraction
    keep_uploaded_s: int = 86400  # keep uploaded readings this long (duplicate detection)
    commit_interval_s: float = 0.02  # group commits: acks follow within this much
    # Rejected messages kept as evidence, in a budget of their own that max_bytes does not
    # count (gateway/spool.py): the oldest are dropped first, and the drops counted.
    quarantine_max_bytes: int = 64 << 20
    quarantine_max_rows: int = 50_000


@dataclass(frozen=True)
class UplinkSettings:
    url: str = ""  # the cloud ledger, e.g. https://ledger.example.org; empty: no uplink
    timeout_s: float = 30.0
    max_backoff_s: float = 300.0


@dataclass(frozen=True)
class StatusSettings:
    host: str = "127.0.0.1"
    port: int = 8470  # 0 disables the status page and /metrics


@dataclass(frozen=True)
class Settings:
    site: str
    data_dir: Path
    sign_acks: bool = True
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    # alarm profiles by name; boxes name theirs in the registry ("default" unless set)
    alarms: dict[str, AlarmProfile] = field(default_factory=lambda: {"default": AlarmProfile()})

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"pharmasync-gateway-{self.site}"


_SECTIONS = {
    "mqtt": MqttSettings,
    "verify": VerifySettings,
    "batch": BatchSettings,
    "spool": SpoolSettings,
    "uplink": UplinkSettings,
    "status": StatusSettings,
}
# (section, option) -> (lowest, highest) for numbers that must be in a range
_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("mqtt", "port"): (1, 65535),
    ("mqtt", "keepalive"): (5, 3600),
    ("verify", "max_future_s"): (0, 86400),
    ("verify", "max_age_s"): (60, 365 * 86400),
    ("batch", "max_readings"): (1, 1 << 20),
    ("batch", "max_age_s"): (0.01, 86400),
    ("spool", "max_bytes"): (1 << 20, 1 << 50),
    ("spool", "warn_fraction"): (0.1, 1.0),
    ("spool", "keep_uploaded_s"): (0, 365 * 86400),
    ("spool", "commit_interval_s"): (0.0, 5.0),
    ("spool", "quarantine_max_bytes"): (1 << 16, 1 << 40),
    ("spool", "quarantine_max_rows"): (1, 10_000_000),
    ("uplink", "timeout_s"): (1, 600),
    ("uplink", "max_backoff_s"): (1, 86400),
    ("status", "port"): (0, 65535),
}


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise SettingsError(f"[{name}]: got {type(raw).__name__}, want a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    value: Any
    for key, value in raw.items():
        if key not in known:
            raise SettingsError(f"[{name}] {key}: unknown option; known: {', '.join(known)}")
        default = getattr(cls(), key)
        want: type = str if default is None else type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            raise SettingsError(f"[{name}] {key}: got {value!r}, want {want.__name__}")
        lo_hi = _RANGES.get((name, key))
        if lo_hi and not lo_hi[0] <= cast(float, value) <= lo_hi[1]:
            raise SettingsError(f"[{name}] {key}: got {value}, want {lo_hi[0]}..{lo_hi[1]}")
        values[key] = value
    return cls(**values)


def from_dict(raw: dict[str, Any], base: Path = Path(".")) -> Settings:
    """Return Settings from parsed TOML; relative data_dir is taken from `base`.

    Raises SettingsError naming the first bad option.
    """
    gw = raw.get("gateway")
    if not isinstance(gw, dict):
        raise SettingsError("[gateway]: missing; want site = ... and data_dir = ...")
    unknown = set(raw) - {"gateway", "alarms", *_SECTIONS}
    if unknown:
        raise SettingsError(f"unknown table(s): {', '.join(sorted(unknown))}")
    site = gw.get("site")
    if not isinstance(site, str):
        raise SettingsError(f"[gateway] site: got {site!r}, want the site name (e.g. warehouse-1)")
    try:
        topics.check_site(site)
    except ValueError as e:
        raise SettingsError(f"[gateway] {e}") from None
    extra = set(gw) - {"site", "data_dir", "sign_acks"}
    if extra:
        raise SettingsError(f"[gateway] {', '.join(sorted(extra))}: unknown option")
    data_dir = gw.get("data_dir", "pharmasync-gateway")
    if not isinstance(data_dir, str) or not data_dir:
        raise SettingsError(f"[gateway] data_dir: got {data_dir!r}, want a folder path")
    sign_acks = gw.get("sign_acks", True)
    if not isinstance(sign_acks, bool):
        raise SettingsError(f"[gateway] sign_acks: got {sign_acks!r}, want true or false")
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    url = sections["uplink"].url
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(f"[uplink] url: got {url!r}, want http(s)://host[:port]")
    alarms = {"default": AlarmProfile()}
    raw_alarms = raw.get("alarms", {})
    if not isinstance(raw_alarms, dict):
        raise SettingsError(f"[alarms]: got {raw_alarms!r}, want [alarms.<profile name>] tables")
    for name, table in raw_alarms.items():
        if not isinstance(table, dict):
            raise SettingsError(f"[alarms.{name}]: got {table!r}, want a table")
        known = set(AlarmProfile.__dataclass_fields__)
        if set(table) - known:
            bad = ", ".join(sorted(set(table) - known))
            raise SettingsError(f"[alarms.{name}] {bad}: unknown option; known: {', '.join(known)}")
        try:
            alarms[name] = AlarmProfile(**table)
        except (AlarmError, TypeError) as e:
            raise SettingsError(f"[alarms.{name}] {e}") from None
    return Settings(
        site=site, data_dir=base / data_dir, sign_acks=sign_acks, alarms=alarms, **sections
    )


def load(path: Path) -> Settings:
    """Read and validate a gateway.toml. Raises SettingsError, or OSError if unreadable."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e})") from None
    return from_dict(raw, path.parent)
