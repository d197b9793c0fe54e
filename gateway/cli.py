"""`pharmasync gateway ...`: the edge gateway's commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from device.cli import hex_bytes, print_record
from gateway import batch


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `gateway` command group to the top-level parser."""
    parser = subparsers.add_parser("gateway", help="the edge gateway: run it, register boxes")
    commands = parser.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the gateway",
        description="Receive readings over MQTT, verify, spool, acknowledge and seal them "
        "into signed Merkle batches. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    run.add_argument("--config", type=Path, required=True, help="gateway.toml")
    run.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    run.set_defaults(handler=_run)

    boxes = commands.add_parser("boxes", help="list, add or remove registered boxes")
    boxes.add_argument("--config", type=Path, required=True, help="gateway.toml")
    boxes_cmd = boxes.add_subparsers(dest="boxes_command", metavar="ACTION", required=True)
    boxes_cmd.add_parser("list", help="list registered boxes").set_defaults(handler=_boxes_list)
    add = boxes_cmd.add_parser(
        "add",
        help="register a box (or update it)",
        description="Register a box by its public key, or by the folder `pharmasync device "
        "provision` made for it (its config.json holds the key and label).",
    )
    add.add_argument("box", help="the box's x-only public key (hex), or its provisioned folder")
    add.add_argument("--label", help="where the box is (default: from its config)")
    add.add_argument("--zone", default="", help="cold room / zone (alarms are per zone)")
    add.add_argument("--lot", default="", help="lot or shipment the box travels with")
    add.add_argument("--ble-address", default="", help="collect over BLE from this address")
    add.add_argument("--profile", default="default", help="alarm profile name")
    add.set_defaults(handler=_boxes_add)
    remove = boxes_cmd.add_parser("remove", help="unregister a box")
    remove.add_argument("key", type=hex_bytes, help="the box's public key (hex)")
    remove.set_defaults(handler=_boxes_remove)

    key = commands.add_parser(
        "key",
        help="print the gateway's public key (creating its key on first use)",
        description="Print the gateway's BIP-340 public key, to register the gateway with "
        "the cloud (`pharmasync cloud register gateway KEY`). Creates DATA_DIR/gateway.key "
        "(mode 0600) if the gateway has none yet.",
    )
    key.add_argument("--config", type=Path, required=True, help="gateway.toml")
    key.set_defaults(handler=_key)

    _register_alarms(commands)

    inspect = commands.add_parser(
        "inspect-batch",
        help="decode and verify a batch header",
        description="Decode a 181-byte batch header given as hex (or '-' for stdin), check its "
        "fields and its gateway signature. Exit status 1 if it does not verify.",
    )
    inspect.add_argument(
        "header", type=hex_bytes, help="the header's wire bytes as hex, or '-' for stdin"
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
    ack.add_argument("id", help="the alarm's id (8 hex characters, from `list` or a message)")
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
    by = args.by.strip()
    if not by or len(by) > 100:
        print("error: --by: want a name of 1..100 characters", file=sys.stderr)
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
    print(schnorr.pubkey(app.load_or_create_key(settings.data_dir / "gateway.key")).hex())
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
    label = args.label
    folder = Path(args.box)
    try:
        if folder.is_dir():
            cfg = json.loads((folder / "config.json").read_text())
            key = bytes.fromhex(cfg["key"])
            label = label if label is not None else cfg.get("label", "")
        else:
            key = bytes.fromhex(args.box)
        box = registry.Box(
            key, label or "", settings.site, args.zone, args.lot, args.ble_address, args.profile
        )
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {args.box}: {e}", file=sys.stderr)
        return 2
    reg = app.open_registry(settings)
    reg.put(box)
    reg.close()
    print(f"registered box {box.device_id} ({box.label or 'no label'}) for site {settings.site}")
    return 0


def _boxes_remove(args: argparse.Namespace) -> int:
    from gateway import app

    reg = app.open_registry(_settings(args.config))
    removed = reg.remove(args.key)
    reg.close()
    print("removed" if removed else "no such box")
    return 0 if removed else 1
