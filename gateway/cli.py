"""`pharmasync gateway ...`: the edge gateway's commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from device.cliutil import BOX, examples, hex_bytes, print_record, read_secret
from gateway import alarm_ack, batch

RUN = "pharmasync gateway run --config gateway.toml"
BOXES = "pharmasync gateway boxes --config gateway.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `gateway` command group to the top-level parser."""
    parser = subparsers.add_parser(
        "gateway",
        help="the edge gateway: run it, register boxes",
        epilog=examples(RUN, f"{BOXES} list"),
    )
    commands = parser.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the gateway",
        description="Receive readings over MQTT, verify, spool, acknowledge and seal them "
        "into signed Merkle batches. Stops cleanly on Ctrl-C or SIGTERM.",
        epilog=examples(RUN, f"{RUN} --log-json"),
    )
    run.add_argument("--config", type=Path, required=True, help="gateway.toml")
    run.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    run.set_defaults(handler=_run)

    boxes = commands.add_parser(
        "boxes",
        help="list, add or remove registered boxes",
        epilog=examples(f"{BOXES} list", f"{BOXES} add {BOX} --zone 'cold room A'"),
    )
    boxes.add_argument("--config", type=Path, required=True, help="gateway.toml")
    boxes_cmd = boxes.add_subparsers(dest="boxes_command", metavar="ACTION", required=True)
    boxes_cmd.add_parser(
        "list", help="list registered boxes", epilog=examples(f"{BOXES} list")
    ).set_defaults(handler=_boxes_list)
    add = boxes_cmd.add_parser(
        "add",
        help="register a box (or update it)",
        description="Register a box by its public key, or by the folder `pharmasync device "
        "provision` made for it (its config.json holds the key and label). With [registry] "
        "follow = true the cloud's registry is the authority: local edits are for bootstrap "
        "and for the fields the cloud does not set (zone, lot, BLE address, profile).",
        epilog=examples(
            f"{BOXES} add {BOX} --zone 'cold room A' --lot LOT-42",
            f"{BOXES} add {BOX} --label 'Cold room A, shelf 2' --profile default",
        ),
    )
    add.add_argument("box", help="the box's x-only public key (hex), or its provisioned folder")
    add.add_argument("--label", help="where the box is (default: from its config)")
    add.add_argument("--zone", default="", help="cold room / zone (alarms are per zone)")
    add.add_argument("--lot", default="", help="lot or shipment the box travels with")
    add.add_argument("--ble-address", default="", help="collect over BLE from this address")
    add.add_argument("--profile", default="default", help="alarm profile name")
    add.set_defaults(handler=_boxes_add)
    remove = boxes_cmd.add_parser(
        "remove", help="unregister a box", epilog=examples(f"{BOXES} remove {BOX}")
    )
    remove.add_argument("box", help="the box's x-only public key (hex), or its provisioned folder")
    remove.set_defaults(handler=_boxes_remove)

    key = commands.add_parser(
        "key",
        help="print the gateway's public key (creating its key on first use)",
        description="Print the gateway's BIP-340 public key, to register the gateway with "
        "the cloud (`pharmasync cloud register gateway @DATA_DIR/gateway.pub`), and write it "
        "to DATA_DIR/gateway.pub. Creates DATA_DIR/gateway.key (mode 0600) if the gateway has "
        "none yet.",
        epilog=examples("pharmasync gateway key --config gateway.toml"),
    )
    key.add_argument("--config", type=Path, required=True, help="gateway.toml")
    key.set_defaults(handler=_key)

    certify = commands.add_parser(
        "certify",
        help="certify a gateway key with the owner key, so the owner's boxes trust its acks",
        description="Sign a certificate (docs/protocol.md, gateway certificate) of a gateway "
        "key for a site with the owner key: boxes provisioned with this owner's public key "
        "(`device provision --owner-pub`) accept acknowledgements only from gateways so "
        "certified. Point the gateway at the file with [gateway] certificate = FILE.",
        epilog=examples(
            "pharmasync gateway certify --owner-key owner.key --gateway-key "
            "@gw-data/gateway.pub --site warehouse-1 --days 365 --out gw-data/gateway.cert"
        ),
    )
    certify.add_argument("--owner-key", type=Path, required=True, help="owner secret key file")
    certify.add_argument(
        "--gateway-key",
        type=hex_bytes,
        required=True,
        metavar="KEY|@FILE",
        help="the gateway's public key (hex, or @FILE: `gateway key` writes DATA_DIR/gateway.pub)",
    )
    certify.add_argument("--site", required=True, help="the site the gateway serves")
    certify.add_argument("--days", type=int, default=365, help="valid for this many days")
    certify.add_argument(
        "--out", type=Path, default=Path("gateway.cert"), help="where to write it (hex)"
    )
    certify.set_defaults(handler=_certify)
    _register_alarms(commands)

    inspect = commands.add_parser(
        "inspect-batch",
        help="decode and verify a batch header",
        description="Decode a 181-byte batch header given as hex (or '-' for stdin), check its "
        "fields and its gateway signature. Exit status 1 if it does not verify.",
        epilog=examples(
            "pharmasync gateway inspect-batch @header.hex",
            "pharmasync gateway inspect-batch @header.hex --json",
        ),
    )
    inspect.add_argument(
        "header",
        type=hex_bytes,
        help="the header's wire bytes as hex, '-' for stdin, or @FILE holding the hex",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(handler=_inspect_batch)


ALARMS_EXAMPLES = """examples:
  pharmasync gateway alarms --config gateway.toml list
  pharmasync gateway alarms --config gateway.toml ack 3f2a9c1e --by "A. Jones"
  pharmasync gateway alarms --config gateway.toml ack-signed ack.json
"""


def _register_alarms(commands: argparse._SubParsersAction) -> None:
    """`gateway alarms list | ack ID --by NAME | ack-signed FILE`."""
    alarms = commands.add_parser(
        "alarms",
        help="list alarms and who was told; acknowledge one",
        description="The alarms this gateway raised, whom it told (webhooks, e-mail, along "
        "[[escalation]]) and who acknowledged them. Acknowledging stops the escalation; the "
        "running gateway picks it up within [notify] tick_s.",
        epilog=ALARMS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alarms.add_argument("--config", type=Path, required=True, help="gateway.toml")
    actions = alarms.add_subparsers(dest="alarms_command", metavar="ACTION", required=True)

    def action(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            help=summary,
            description=description or summary,
            epilog=ALARMS_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    listing = action("list", "list alarms, escalating ones first, with whom each told")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(handler=_alarms_list)
    ack = action("ack", "acknowledge an alarm: no more escalation")
    ack.add_argument(
        "id",
        type=alarm_ack.alarm_id,
        help="the alarm's id (8 hex characters, from `list` or a message)",
    )
    ack.add_argument("--by", required=True, help="who acknowledges (recorded and reported)")
    ack.set_defaults(handler=_alarms_ack)
    signed = action(
        "ack-signed",
        "apply a signed acknowledgement (PharmaSync/alarm-ack/v1)",
        "Check a signed acknowledgement (docs/protocol.md) against this gateway and [notify] "
        "ack_keys, and apply it. Exit status 1 if it is refused.",
    )
    signed.add_argument("file", help="the signed ack (JSON), or '-' for stdin")
    signed.set_defaults(handler=_alarms_ack_signed)


def _escalation(args: argparse.Namespace):  # -> Escalation, or exits 1 with the reason
    from device import schnorr
    from gateway import app
    from gateway.escalation import AlarmStore, Escalation

    settings = _settings(args.config)
    key_file = settings.data_dir / "gateway.key"
    if not (settings.data_dir / "notify.sqlite").exists():
        where = settings.data_dir
        print(f"error: no alarms yet in {where} (has the gateway run?)", file=sys.stderr)
        raise SystemExit(1)
    try:
        key = schnorr.pubkey(bytes.fromhex(key_file.read_text().strip()))
    except (OSError, ValueError) as e:
        print(f"error: the gateway's key {key_file}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    store = AlarmStore(settings.data_dir / "notify.sqlite")
    return Escalation(settings, key, app.open_registry(settings), store)


def _alarms_list(args: argparse.Namespace) -> int:
    import time

    esc = _escalation(args)
    alarms = esc.snapshot(args.limit)["alarms"]
    if args.json:
        print(json.dumps(alarms, indent=2))
        return 0
    if not alarms:
        print("no alarms")
    labels = {b.device_id: b.label or b.device_id for b in esc.registry.all()}
    for a in alarms:
        failing = sorted({d["target"] for d in a["deliveries"] if d["state"] == "pending"})
        state = "ESCALATING" if a["escalating"] else a["state"]
        raised = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a["raised_at"]))
        print(
            f"{a['id']}  {state:<34} {a['kind']:<10} {labels.get(a['zone'], a['zone'])}"
            f"  raised {raised}  told: {', '.join(a['told']) or 'nobody yet'}"
            + (f"  waiting: {', '.join(failing)}" if failing else "")
        )
        print(f"          {a['detail']}")
    return 0


def _alarms_ack(args: argparse.Namespace) -> int:
    try:
        by = alarm_ack.check_by(args.by).strip()
    except alarm_ack.AckError as e:
        print(f"error: --{e.detail}", file=sys.stderr)
        return 2
    result = _escalation(args).ack(args.id, by)
    print(f"alarm {args.id}: {result}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _alarms_ack_signed(args: argparse.Namespace) -> int:
    try:
        wire = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        print(f"error: {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    result = _escalation(args).apply_signed_ack(wire.strip())
    print(f"alarm {result.alarm or '?'}: {result}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _inspect_batch(args: argparse.Namespace) -> int:
    try:
        header = batch.decode(args.header)
    except batch.BatchError as e:
        print(f"error: malformed batch header: {e}", file=sys.stderr)
        return 1
    valid = header.verify_signature()
    fields: dict[str, object] = {
        "gateway_key": header.gateway_key.hex(),
        "seq": header.seq,
        "prev_hash": header.prev_hash.hex(),
        "count": header.count,
        "first_time": header.first_time,
        "last_time": header.last_time,
        "merkle_root": header.merkle_root.hex(),
        "header_hash": header.hash().hex(),
        "signature_valid": valid,
    }
    print_record(fields, args.json)
    return 0 if valid else 1


def _settings(path: Path):  # -> Settings, or exits 2 with the reason
    from gateway import settings

    try:
        return settings.load(path)
    except (OSError, settings.SettingsError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def configure_logging(json_lines: bool) -> None:
    """Log INFO and up to stderr: one JSON object per line, or readable lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from gateway import app

    settings = _settings(args.config)
    configure_logging(args.log_json)
    asyncio.run(app.serve(settings))
    return 0


def _key(args: argparse.Namespace) -> int:
    from device import schnorr
    from gateway import app

    settings = _settings(args.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = schnorr.pubkey(app.load_or_create_key(settings.data_dir / "gateway.key")).hex()
    (settings.data_dir / "gateway.pub").write_text(key + "\n")
    print(key)
    return 0


def _boxes_list(args: argparse.Namespace) -> int:
    from gateway import app

    registry = app.open_registry(_settings(args.config))
    rows = registry.all()
    if not rows:
        print("no boxes registered: add one with `pharmasync gateway boxes add KEY`")
    for b in rows:
        print(
            f"{b.device_id}  {b.label or '-':<24} zone={b.zone or '-'} lot={b.lot or '-'}"
            f"{' ble=' + b.ble_address if b.ble_address else ''}  key={b.key.hex()}"
        )
    return 0


def _boxes_add(args: argparse.Namespace) -> int:
    from gateway import app, registry

    settings = _settings(args.config)
    try:
        key, label = _read_box(args.box)
        label = args.label if args.label is not None else label
        box = registry.Box(
            key, label, settings.site, args.zone, args.lot, args.ble_address, args.profile
        )
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {args.box}: {e}", file=sys.stderr)
        return 2
    reg = app.open_registry(settings)
    reg.put(box)
    reg.close()
    print(f"registered box {box.device_id} ({box.label or 'no label'}) for site {settings.site}")
    return 0


def _read_box(text: str) -> tuple[bytes, str]:
    """(key, label) of a box named by its key in hex or by its provisioned folder (whose
    config.json holds both). Raises OSError, KeyError or ValueError saying what is wrong."""
    folder = Path(text)
    if folder.is_dir():
        cfg = json.loads((folder / "config.json").read_text())
        return bytes.fromhex(cfg["key"]), str(cfg.get("label", ""))
    return bytes.fromhex(text), ""


def _boxes_remove(args: argparse.Namespace) -> int:
    from gateway import app

    settings = _settings(args.config)
    try:
        key, _ = _read_box(args.box)
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {args.box}: {e}", file=sys.stderr)
        return 2
    reg = app.open_registry(settings)
    removed = reg.remove(key)
    reg.close()
    print("removed" if removed else "no such box")
    return 0 if removed else 1


def _certify(args: argparse.Namespace) -> int:
    import time

    from device import cert, topics

    if (secret := read_secret(args.owner_key, "--owner-key")) is None:
        return 2
    now = int(time.time())
    try:
        topics.check_site(args.site)
        if not 1 <= args.days <= 3650:
            raise ValueError(f"days: got {args.days}, want 1..3650")
        data = cert.encode(secret, args.gateway_key, args.site, now - 300, now + args.days * 86400)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        print(f"error: --out: {e}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w") as f:
        f.write(data.hex() + "\n")
    c = cert.decode(data)
    print(f"certificate written to {args.out}: gateway {c.gateway.hex()} at site {c.site}")
    print(f"  owner      : {c.owner.hex()} (give boxes --owner-pub {c.owner.hex()})")
    print(f"  valid      : {c.not_before} .. {c.not_after} (Unix seconds)")
    print(f'next: set [gateway] certificate = "{args.out}" in gateway.toml')
    return 0
