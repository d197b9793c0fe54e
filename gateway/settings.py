"""The gateway's settings: one TOML file (see hardware/gateway.toml for every option).

load() reads it, fills defaults and rejects anything wrong with a message that names the
option, so a gateway with a broken file says why at start instead of misbehaving later.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

from device import topics
from gateway import event
from gateway.alarms import AlarmError, AlarmProfile
from gateway.checkpoint import CosignatureVerifier
from gateway.note import MAX_SIGNATURES, NoteError, Verifier


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
    # A second session takes readings boxes took online ahead of any backlog being drained,
    # so alarms see the present at once (gateway/live_lane.py). Off: it must parse a copy
    # of every reading, and in a full site-wide drain it fell behind the storm and took
    # half the event loop (bench/RESULTS.md, issue 13 part 3).
    live_lane: bool = False


@dataclass(frozen=True)
class VerifySettings:
    max_future_s: int = 120  # a synced box's reading may be this far ahead of our clock
    max_age_s: int = 7 * 86400  # and this far behind (a box's backlog holds ~68 h)
    # Threads checking BIP-340 signatures (libsecp256k1 releases the GIL): one per core.
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


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
    # Batches uploaded at once (gateway/uplink.py): while one is verified and stored, the
    # next travel; after an outage thousands wait, and one at a time each waited for a
    # round trip and two trips to a busy spool thread (bench/RESULTS.md, issue 13 part 3).
    in_flight: int = 4
    # Cosigned receipts (gateway/cosigned_receipt.py): fetch one per batch once a checkpoint
    # including it carries this many witness cosignatures; 0: off.
    cosignatures: int = 0
    cosigned_poll_s: float = 60.0  # how often to ask while the cloud has none yet
    log_vkey: str = ""  # the log's pinned verifier key; empty: checkpoint signatures unchecked
    witnesses: tuple[str, ...] = ()  # witness cosignature keys; empty: count lines unchecked


@dataclass(frozen=True)
class RegistrySettings:
    """[registry]: follow the cloud's registry (gateway/registry_follow.py)."""

    follow: bool = False  # fetch the cloud's registry ([uplink] url) and apply this site's
    interval_s: float = 60.0  # between fetches
    # The first owner keys, pinned out of band (hex): the log's bootstrap must name exactly
    # these; every later change is checked from the log alone.
    owners: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class LotsSettings:
    """[lots]: alarm on the storage profiles of the lots the boxes are on, as the cloud
    tells this gateway (gateway/lots_follow.py); needs [uplink] url and this gateway
    registered in the cloud."""

    follow: bool = True  # ask the cloud ([uplink] url; without one, nothing is asked)
    interval_s: float = 60.0  # between asks
    max_backoff_s: float = 600.0  # the longest wait between asks while the cloud fails


@dataclass(frozen=True)
class StatusSettings:
    host: str = "127.0.0.1"
    port: int = 8470  # 0 disables the status page and /metrics


@dataclass(frozen=True)
class EventSettings:
    status_interval_s: float = 900.0  # a box-status event per box this often; 0: never
    page_size: int = 100  # events per upload (POST /v1/events takes at most 100)


@dataclass(frozen=True)
class EscalationLevel:
    """One step of the escalation list: `after_s` after an alarm is raised, tell `notify`."""

    after_s: float
    notify: tuple[str, ...]  # names of [notify.targets]


@dataclass(frozen=True)
class NotifySettings:
    """Who hears of an alarm, how, and who may acknowledge it from afar ([notify],
    [notify.targets], [[escalation]]; hardware/gateway.toml explains each option)."""

    targets: dict[str, str] = field(default_factory=dict)  # name -> https://... | mailto:...
    levels: tuple[EscalationLevel, ...] = ()
    repeat_every_s: float = 900.0  # repeat the last level this often; 0: never
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    mail_from: str = ""  # default: pharmasync-gateway@<site>
    timeout_s: float = 10.0  # per delivery attempt
    retry_min_s: float = 30.0  # first retry of a failed delivery; doubling up to retry_max_s
    retry_max_s: float = 900.0
    give_up_after_s: float = 86400.0  # stop retrying a delivery this long after it was due
    tick_s: float = 5.0  # how often the escalation looks for due messages
    ack_keys: tuple[bytes, ...] = ()  # x-only keys whose signed acknowledgements count
    ack_token: str = ""  # the status page's POST ack needs it; empty: no ack on the page
    status_url: str = ""  # where messages tell staff the status page is (default: [status])


@dataclass(frozen=True)
class Settings:
    site: str
    data_dir: Path
    sign_acks: bool = True  # version-1 acks (firmware 0.1) carry a signature
    # The owner's certificate of this gateway's key (`pharmasync gateway certify`, hex):
    # boxes accept only acks of a gateway their owner certified. None: no box with an
    # owner key will forget a reading we acknowledge.
    certificate: Path | None = None
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    events: EventSettings = field(default_factory=EventSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    lots: LotsSettings = field(default_factory=LotsSettings)
    # alarm profiles by name; boxes name theirs in the registry ("default" unless set)
    alarms: dict[str, AlarmProfile] = field(default_factory=lambda: {"default": AlarmProfile()})
    notify: NotifySettings = field(default_factory=lambda: NotifySettings())

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
    "events": EventSettings,
    "lots": LotsSettings,
}
# (section, option) -> (lowest, highest) for numbers that must be in a range
_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("mqtt", "port"): (1, 65535),
    ("mqtt", "keepalive"): (5, 3600),
    ("verify", "max_future_s"): (0, 86400),
    ("verify", "max_age_s"): (60, 365 * 86400),
    ("verify", "threads"): (1, 256),
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
    ("uplink", "in_flight"): (1, 64),  # the cloud waits for at most 64 predecessors
    ("uplink", "cosignatures"): (0, MAX_SIGNATURES - 1),
    ("uplink", "cosigned_poll_s"): (0.05, 86400),
    ("status", "port"): (0, 65535),
    ("events", "status_interval_s"): (0, 86400),
    ("events", "page_size"): (1, event.MAX_PAGE),
    ("registry", "interval_s"): (0.05, 86400),
    ("lots", "interval_s"): (0.05, 86400),
    ("lots", "max_backoff_s"): (0.05, 86400),
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
        if want is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = tuple(value)  # a TOML list of strings
        if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            wanted = "a list of strings" if want is tuple else want.__name__
            raise SettingsError(f"[{name}] {key}: got {value!r}, want {wanted}")
        lo_hi = _RANGES.get((name, key))
        if lo_hi and not lo_hi[0] <= cast(float, value) <= lo_hi[1]:
            raise SettingsError(f"[{name}] {key}: got {value}, want {lo_hi[0]}..{lo_hi[1]}")
        values[key] = value
    return cls(**values)


def _check_keys(uplink: UplinkSettings) -> None:
    """Refuse a malformed pinned log key or witness key at start-up, naming it."""
    try:
        if uplink.log_vkey:
            Verifier.parse(uplink.log_vkey)
    except NoteError as e:
        raise SettingsError(f"[uplink] log_vkey: {e}") from None
    for i, vkey in enumerate(uplink.witnesses):
        try:
            CosignatureVerifier.parse(vkey)
        except NoteError as e:
            raise SettingsError(f"[uplink] witnesses[{i}]: {e}") from None


def from_dict(raw: dict[str, Any], base: Path = Path(".")) -> Settings:
    """Return Settings from parsed TOML; relative data_dir is taken from `base`.

    Raises SettingsError naming the first bad option.
    """
    gw = raw.get("gateway")
    if not isinstance(gw, dict):
        raise SettingsError("[gateway]: missing; want site = ... and data_dir = ...")
    unknown = set(raw) - {"gateway", "alarms", "notify", "escalation", "registry", *_SECTIONS}
    if unknown:
        raise SettingsError(f"unknown table(s): {', '.join(sorted(unknown))}")
    site = gw.get("site")
    if not isinstance(site, str):
        raise SettingsError(f"[gateway] site: got {site!r}, want the site name (e.g. warehouse-1)")
    try:
        topics.check_site(site)
    except ValueError as e:
        raise SettingsError(f"[gateway] {e}") from None
    extra = set(gw) - {"site", "data_dir", "sign_acks", "certificate"}
    if extra:
        raise SettingsError(f"[gateway] {', '.join(sorted(extra))}: unknown option")
    data_dir = gw.get("data_dir", "pharmasync-gateway")
    if not isinstance(data_dir, str) or not data_dir:
        raise SettingsError(f"[gateway] data_dir: got {data_dir!r}, want a folder path")
    sign_acks = gw.get("sign_acks", True)
    if not isinstance(sign_acks, bool):
        raise SettingsError(f"[gateway] sign_acks: got {sign_acks!r}, want true or false")
    cert = gw.get("certificate")
    if cert is not None and (not isinstance(cert, str) or not cert):
        raise SettingsError(f"[gateway] certificate: got {cert!r}, want a file path")
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    url = sections["uplink"].url
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(f"[uplink] url: got {url!r}, want http(s)://host[:port]")
    _check_keys(sections["uplink"])
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
    notify = _notify(raw.get("notify", {}), raw.get("escalation", []))
    registry = _registry(raw.get("registry", {}), url)
    return Settings(
        site=site,
        data_dir=base / data_dir,
        sign_acks=sign_acks,
        certificate=base / cert if cert else None,
        alarms=alarms,
        notify=notify,
        registry=registry,
        **sections,
    )


def _registry(raw: Any, uplink_url: str) -> RegistrySettings:
    """Return RegistrySettings from the [registry] table. Raises SettingsError naming the
    first bad option: following needs an [uplink] url and at least one pinned owner."""
    if not isinstance(raw, dict):
        raise SettingsError(f"[registry]: got {type(raw).__name__}, want a table")
    owners = _hex_keys(raw.get("owners", []), "[registry] owners")
    plain = {k: v for k, v in raw.items() if k != "owners"}
    base: RegistrySettings = _section("registry", RegistrySettings, plain)
    if base.follow and not uplink_url:
        raise SettingsError("[registry] follow: needs [uplink] url, the cloud to follow")
    if base.follow and not owners:
        raise SettingsError("[registry] follow: needs owners = [the first owner keys, hex]")
    return replace(base, owners=owners)


def _hex_keys(keys: Any, where: str) -> tuple[bytes, ...]:
    """Return a TOML list of x-only keys (64 hex characters each). Raises SettingsError
    naming `where` and the first bad key."""
    if not isinstance(keys, list):
        raise SettingsError(f"{where}: got {keys!r}, want a list of hex keys")
    out = []
    for k in keys:
        try:
            key = bytes.fromhex(k) if isinstance(k, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise SettingsError(f"{where}: got {k!r}, want 64 hex characters")
        out.append(key)
    return tuple(out)


_NOTIFY_SCALARS = ("targets", "levels", "ack_keys")  # not plain options: parsed below
_NOTIFY_RANGES: dict[str, tuple[float, float]] = {
    "repeat_every_s": (0, 7 * 86400),
    "smtp_port": (1, 65535),
    "timeout_s": (0.1, 600),
    "retry_min_s": (0.01, 86400),
    "retry_max_s": (0.01, 86400),
    "give_up_after_s": (1, 30 * 86400),
    "tick_s": (0.01, 600),
}


def _notify(raw: Any, raw_levels: Any) -> NotifySettings:
    """Return NotifySettings from the [notify] table and the [[escalation]] array.

    Raises SettingsError naming the first bad option.
    """
    if not isinstance(raw, dict):
        raise SettingsError(f"[notify]: got {type(raw).__name__}, want a table")
    plain = {k: v for k, v in raw.items() if k not in _NOTIFY_SCALARS}
    for key, value in plain.items():
        if isinstance(value, int | float) and key in _NOTIFY_RANGES:
            lo, hi = _NOTIFY_RANGES[key]
            if not lo <= value <= hi:
                raise SettingsError(f"[notify] {key}: got {value}, want {lo}..{hi}")
    base: NotifySettings = _section("notify", NotifySettings, plain)
    targets = raw.get("targets", {})
    if not isinstance(targets, dict):
        raise SettingsError('[notify.targets]: want a table of name = "https://..." | "mailto:..."')
    for name, where in targets.items():
        web = isinstance(where, str) and where.startswith(("http://", "https://"))
        mail = isinstance(where, str) and where.startswith("mailto:") and "@" in where
        if not (web or mail):
            want = "https://host/path (webhook) or mailto:someone@example.org"
            raise SettingsError(f"[notify.targets] {name}: got {where!r}, want {want}")
        if mail and not base.smtp_host:
            raise SettingsError(f"[notify.targets] {name}: an e-mail target needs smtp_host")
    ack_keys = _hex_keys(raw.get("ack_keys", []), "[notify] ack_keys")
    if not isinstance(raw_levels, list):
        raise SettingsError("[[escalation]]: want an array of tables (after_s, notify)")
    levels: list[EscalationLevel] = []
    for i, level in enumerate(raw_levels, 1):
        where = f"[[escalation]] #{i}"
        if not isinstance(level, dict) or set(level) != {"after_s", "notify"}:
            raise SettingsError(f"{where}: want after_s = seconds and notify = [target names]")
        after, names = level["after_s"], level["notify"]
        earlier = levels[-1].after_s if levels else -1
        if not isinstance(after, int | float) or isinstance(after, bool) or not after > earlier:
            raise SettingsError(f"{where} after_s: got {after!r}, want a number > {earlier}")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise SettingsError(f"{where} notify: got {names!r}, want a list of target names")
        if unknown := [n for n in names if n not in targets]:
            raise SettingsError(f"{where} notify: {unknown} not in [notify.targets]")
        levels.append(EscalationLevel(float(after), tuple(names)))
    if base.retry_max_s < base.retry_min_s:
        raise SettingsError("[notify] retry_max_s: want >= retry_min_s")
    return replace(base, targets=dict(targets), levels=tuple(levels), ack_keys=ack_keys)


def load(path: Path) -> Settings:
    """Read and validate a gateway.toml. Raises SettingsError, or OSError if unreadable."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e})") from None
    return from_dict(raw, path.parent)
