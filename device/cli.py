"""`pharmasync device ...`: host-side tools for sensor boxes (CPython only, never flashed)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path

from device import config, datalock, reading, simsensor
from device.cliutil import (
    BOX,
    describe,
    examples,
    hex_bytes,
    key_hex,
    keygen,
    positive_int,
    print_record,
)

PROVISION_EXAMPLE = (
    "pharmasync device provision --site warehouse-1 --label 'Cold room A' "
    "--broker 127.0.0.1:1883 --owner-pub @owner.pub --out boxes"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `device` command group to the top-level parser."""
    parser = subparsers.add_parser(
        "device",
        help="sensor box tools: keys, reading inspection",
        epilog=examples(PROVISION_EXAMPLE, f"pharmasync device run --config {BOX}/config.json"),
    )
    commands = parser.add_subparsers(dest="device_command", metavar="COMMAND", required=True)

    keygen_cmd = commands.add_parser(
        "keygen",
        help="create a BIP-340 key pair for a box",
        description="Create a secret key file (mode 0600) and its public key beside it (OUT "
        "with the suffix .pub), and print the box's x-only public key.",
        epilog=examples("pharmasync device keygen box.key"),
    )
    keygen_cmd.add_argument(
        "out", type=Path, help="where to write the secret key (hex); must not exist"
    )
    keygen_cmd.set_defaults(handler=keygen)

    inspect = commands.add_parser(
        "inspect",
        help="decode and verify a reading",
        description="Decode a 110-byte reading given as hex (or '-' to read hex from stdin), "
        "check every field and its signature, and print it. Exit status 1 if it does not verify.",
        epilog=examples(
            "pharmasync device inspect @reading.hex",
            "pharmasync device inspect @reading.hex --json",
        ),
    )
    inspect.add_argument(
        "reading",
        type=hex_bytes,
        help="the reading's wire bytes as hex, '-' for stdin, or @FILE holding the hex",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(handler=_inspect)

    prov = commands.add_parser(
        "provision",
        help="create a box: key pair, config and QR label",
        description="Create boxes/<device-id>/ with config.json, secret.key (0600) and a QR "
        "label (label.svg, label.png) carrying the box's public key.",
        epilog=examples(PROVISION_EXAMPLE),
    )
    prov.add_argument("--site", required=True, help="site name, one MQTT topic level")
    prov.add_argument("--label", default="", help="where the box goes, e.g. 'Cold room A'")
    prov.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST[:PORT]")
    prov.add_argument("--wifi-ssid", help="Wi-Fi network (ESP32 boxes)")
    prov.add_argument("--wifi-password", help="Wi-Fi password")
    prov.add_argument("--interval", type=int, default=60, help="seconds between readings")
    prov.add_argument("--power", choices=("mains", "battery"), default="mains")
    prov.add_argument(
        "--publish-every", type=int, default=10, help="battery: readings per radio wake"
    )
    prov.add_argument("--dht-pin", type=int, default=4, help="GPIO of the DHT22 data line")
    _ack_trust_arguments(prov)
    prov.add_argument(
        "--battery-adc-pin", type=int, help="ESP32 ADC pin of a 100k/100k battery divider"
    )
    prov.add_argument("--out", type=Path, default=Path("boxes"), help="folder for box folders")
    prov.add_argument(
        "--on-board",
        metavar="PORT",
        help="make the key on the board at PORT (the secret never leaves it); flashes firmware",
    )
    prov.set_defaults(handler=_provision)

    flash = commands.add_parser(
        "flash",
        help="copy firmware, config and key to an ESP32 with mpremote",
        description="Copy the PharmaSync firmware, the box's config.json and secret.key to an "
        "ESP32 that runs MicroPython, install aioble and reset it.",
        epilog=examples(
            f"pharmasync device flash {BOX} --port /dev/ttyUSB0",
            f"pharmasync device flash {BOX} --port /dev/ttyUSB0 --dry-run",
        ),
    )
    flash.add_argument("box", type=Path, help="the box folder made by provision")
    flash.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    flash.add_argument("--no-ble", action="store_true", help="skip installing aioble")
    flash.add_argument(
        "--source", action="store_true", help="copy .py source instead of compiled .mpy"
    )
    flash.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    flash.set_defaults(handler=_flash)

    run = commands.add_parser(
        "run",
        help="run a box on this computer (Raspberry Pi, or simulated)",
        description="Run the box firmware on CPython: with a DHT22 through Blinka on a "
        "Raspberry Pi, or with a simulated sensor (--simulate PROFILE).",
        epilog=examples(
            f"pharmasync device run --config {BOX}/config.json",
            f"pharmasync device run --config {BOX}/config.json --simulate coldroom",
        ),
    )
    run.add_argument("--config", type=Path, required=True, help="the box's config.json")
    run.add_argument("--secret", type=Path, help="secret key file (default: beside config)")
    run.add_argument("--data-dir", type=Path, help="state folder (default: beside config)")
    run.add_argument("--simulate", choices=simsensor.PROFILES, help="use a simulated DHT22")
    run.set_defaults(handler=_run)

    sim = commands.add_parser(
        "simulate",
        help="run N simulated boxes against a broker",
        description="Run N simulated boxes (the real firmware loop, simulated DHT22) as "
        "asyncio tasks in one process, publishing to an MQTT broker. Profiles: "
        + ", ".join(simsensor.PROFILES)
        + ". Box identities are kept in --data-dir. With --readings it exits once each box "
        "has sent that many; it exits 1 at once if the broker cannot be reached.",
        epilog=examples(
            "pharmasync device simulate --broker 127.0.0.1:1883 --site warehouse-1 --boxes 2 "
            "--interval 0.5 --readings 3 --owner-pub @owner.pub"
        ),
    )
    sim.add_argument("--boxes", type=positive_int, default=4, help="how many boxes (default 4)")
    sim.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST[:PORT]")
    sim.add_argument("--site", default="demo", help="site name (default demo)")
    sim.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    sim.add_argument("--readings", type=positive_int, help="stop after this many per box")
    sim.add_argument("--profiles", default=",".join(simsensor.PROFILES), help="comma-separated")
    sim.add_argument(
        "--link",
        choices=("native", "aiomqtt"),
        default="native",
        help="MQTT client: native (as on an ESP32) or aiomqtt (as on a Pi)",
    )
    sim.add_argument("--data-dir", type=Path, default=Path("sim-boxes"))
    _ack_trust_arguments(sim)
    sim.set_defaults(handler=_simulate)


def _ack_trust_arguments(parser: argparse.ArgumentParser) -> None:
    """--owner-pub / --insecure-acks: whose acknowledgements a box believes."""
    trust = parser.add_mutually_exclusive_group(required=True)
    trust.add_argument(
        "--owner-pub",
        type=key_hex,
        metavar="KEY|@FILE",
        help="the owner's public key (hex, or @FILE: the OUT.pub `pharmasync cloud keygen` "
        "writes): the box accepts acks only "
        "from gateways this owner certified (`pharmasync gateway certify`)",
    )
    trust.add_argument(
        "--insecure-acks",
        action="store_true",
        help="accept acks nobody can verify: anyone on the broker can make the box drop "
        "readings (tests only)",
    )


def _inspect(args: argparse.Namespace) -> int:
    data = args.reading
    try:
        decoded = reading.decode(data)
    except reading.ReadingError as e:
        print(f"error: malformed reading: {e}", file=sys.stderr)
        return 1
    valid = reading.verify(data)
    print_record(describe(decoded) | {"signature_valid": valid}, args.json)
    return 0 if valid else 1


def _provision(args: argparse.Namespace) -> int:
    from device import flashing, provision

    public_key = None
    if args.on_board:
        run = flashing.mpremote_runner()
        print(f"installing firmware on {args.on_board} to make the key there")
        flashing.copy_firmware(args.on_board, run)
        public_key = flashing.keygen_on_board(args.on_board, run)
    try:
        box = provision.provision(
            args.out,
            args.site,
            args.label,
            args.broker,
            interval_s=args.interval,
            power=args.power,
            publish_every=args.publish_every,
            dht_pin=args.dht_pin,
            wifi_ssid=args.wifi_ssid,
            wifi_password=args.wifi_password,
            owner_key=args.owner_pub,
            insecure_acks=args.insecure_acks,
            public_key=public_key,
        )
    except (provision.ProvisionError, config.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"box {box.device_id} provisioned in {box.folder}/")
    print(f"  public key : {box.key.hex()}")
    print(f"  publishes  : pharmasync/v1/{args.site}/{box.device_id}/reading")
    print(f"  label      : {box.folder / 'label.png'} (print it and stick it on the box)")
    if args.on_board:
        print(
            f"  secret key : on the board only; next: pharmasync device flash {box.folder} "
            f"--port {args.on_board}"
        )
    else:
        print(f"  secret key : {box.folder / 'secret.key'} (mode 0600; it goes onto the box only)")
        print(f"next: pharmasync device flash {box.folder} --port /dev/ttyUSB0")
    return 0


def _flash(args: argparse.Namespace) -> int:
    from device import flashing

    try:
        flashing.flash(
            args.box,
            args.port,
            flashing.mpremote_runner(args.dry_run),
            ble=not args.no_ble,
            source=args.source,
        )
    except flashing.FlashError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        "done: the box boots PharmaSync; watch it with `mpremote connect "
        f"{args.port} repl` or on its status topic"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from device import firmware

    folder = args.config.parent
    try:
        cfg = config.load(str(args.config))
        secret = config.load_secret(str(args.secret or folder / "secret.key"))
    except (OSError, config.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data_dir = str(args.data_dir or folder / "state")
    lock = datalock.acquire(Path(data_dir))  # one box per state folder
    board: object  # a board as device/firmware.py describes it
    if args.simulate:
        from device import board_sim

        board = board_sim.Board(data_dir, profile=args.simulate, interval_s=cfg["interval_s"])
    else:
        from device import board_pi

        board = board_pi.Board(data_dir)
    try:
        box = firmware.Box(board, cfg, secret)
    except ImportError as e:  # Blinka or the DHT driver is missing
        print(f"error: {e.name}: not installed (pip install 'pharmasync[pi]')", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, NotImplementedError) as e:
        # No such GPIO, or Blinka does not know this board: no sensor to read here.
        print(f"error: no DHT22 here: {e} (or use --simulate PROFILE)", file=sys.stderr)
        return 1
    mqtt = cfg["mqtt"]
    sensor = f"simulated DHT22 ({args.simulate})" if args.simulate else "DHT22"
    print(
        f"box {box.id} running: {sensor} every {cfg['interval_s']} s, site "
        f"{cfg['site']}, broker {mqtt['host']}:{mqtt['port']}; Ctrl-C stops",
        flush=True,
    )
    try:
        asyncio.run(box.run())
    except KeyboardInterrupt:
        print(f"stopped; {len(box.backlog)} readings kept for the next run")
    lock.release()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from device import provision, simulate

    try:
        host, port = provision.parse_broker(args.broker)
        profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
        for p in profiles:
            if p not in simsensor.PROFILES:
                raise ValueError(
                    f"profile: got {p!r}, want some of {', '.join(simsensor.PROFILES)}"
                )
        if args.interval <= 0:
            raise ValueError(f"interval: got {args.interval}, want > 0")
        if args.owner_pub is not None:
            config.validate({"site": args.site, "owner_key": args.owner_pub})
    except ValueError as e:  # ConfigError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    settings = simulate.SimSettings(
        broker_host=host,
        broker_port=port,
        site=args.site,
        boxes=args.boxes,
        interval_s=args.interval,
        profiles=profiles,
        data_dir=args.data_dir,
        readings=args.readings,
        link=args.link,
        owner_key=args.owner_pub.lower() if args.owner_pub else None,
        insecure_acks=args.insecure_acks,
    )
    try:  # refuse at once, not after the run: boxes would only queue their readings
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        print(f"error: cannot reach the MQTT broker at {host}:{port}: {reason}", file=sys.stderr)
        return 1
    lock = datalock.acquire(args.data_dir)  # one simulation per folder of box identities
    print(
        f"simulating {args.boxes} boxes against {host}:{port}, a reading every "
        f"{args.interval:g} s each; Ctrl-C to stop"
    )
    try:
        asyncio.run(simulate.simulate(settings))
    except KeyboardInterrupt:
        print("stopped; boxes keep their unacknowledged readings for the next run")
    lock.release()
    return 0
