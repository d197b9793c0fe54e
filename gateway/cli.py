"""`pharmasync gateway ...`: the edge gateway's commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from device.cli import BOX, examples, hex_bytes, print_record
from gateway import batch

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
        "provision` made for it (its config.json holds the key and label).",
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
    )
    certify.add_argument("--owner-key", type=Path, required=True, help="owner secret key file")
    certify.add_argument(
        "--gateway-key", type=hex_bytes, required=True, help="the gateway's public key (hex)"
    )
    certify.add_argument("--site", required=True, help="the site the gateway serves")
    certify.add_argument("--days", type=int, default=365, help="valid for this many days")
    certify.add_argument(
        "--out", type=Path, default=Path("gateway.cert"), help="where to write it (hex)"
    )
    certify.set_defaults(handler=_certify)

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


def owner_secret(path: Path) -> bytes:
    """Return the owner's secret key from the file given as --owner-key, or print why it is
    unusable and exit with status 2."""
    from device import config, schnorr

    try:
        secret = config.load_secret(str(path))
        schnorr.pubkey(secret)  # a valid secret key, not just 64 hex digits
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        print(f"error: --owner-key: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return secret


def _certify(args: argparse.Namespace) -> int:
    import time

    from device import cert, topics

    secret = owner_secret(args.owner_key)
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
