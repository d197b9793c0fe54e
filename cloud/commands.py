"""`pharmasync cloud ...`: run the ledger service and send it signed registry and owner
changes."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from cloud import settings, startup
from cloud.api.app import make_app
from cloud.contracts import catalog, didkey
from cloud.httplog import AccessLog
from cloud.services import witnessing
from device import datalock, schnorr
from device.cliutil import examples, hex_bytes, keygen, read_secret
from gateway import config_entry, jsonbound
from gateway import registry_change as registry
from gateway.cli import configure_logging

log = logging.getLogger("pharmasync.cloud")
_CLOUD = f"--cloud http://127.0.0.1:{settings.DEFAULT_PORT} --owner-key owner.key"
SERVE_EXAMPLE = (
    "pharmasync cloud serve --data-dir cloud-data --owner @owner.pub --regulator @regulator.pub "
    "--port 8480"
)
REGISTER_EXAMPLES = (
    f"pharmasync cloud register {_CLOUD} gateway @gw-data/gateway.pub --site warehouse-1",
    f"pharmasync cloud register {_CLOUD} box @box.pub --site warehouse-1 --label 'Cold room A'",
    f"pharmasync cloud register {_CLOUD} attach @box.pub --subject LOT-42",
)
OWNERS_EXAMPLES = (
    f"pharmasync cloud owners {_CLOUD} add @second-owner.pub",
    f"pharmasync cloud owners {_CLOUD} remove @second-owner.pub",
)
ACK_KEYS_EXAMPLES = (
    f"pharmasync cloud ack-keys {_CLOUD} add @second-owner.pub --site warehouse-1",
    f"pharmasync cloud ack-keys {_CLOUD} remove @second-owner.pub --site warehouse-1",
)
_REGULATOR = f"--cloud http://127.0.0.1:{settings.DEFAULT_PORT} --regulator-key regulator.key"
GRANTS_EXAMPLES = (
    f"pharmasync cloud grants {_REGULATOR} add @auditor.pub --contracts lots,participants",
    f"pharmasync cloud grants {_REGULATOR} remove @auditor.pub --contracts lots",
)
REGULATORS_EXAMPLE = f"pharmasync cloud regulators {_REGULATOR} @new-regulator.pub"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `cloud` command group to the top-level parser."""
    parser = subparsers.add_parser(
        "cloud",
        help="the cloud ledger: serve it, register boxes",
        epilog=examples(SERVE_EXAMPLE),
    )
    commands = parser.add_subparsers(dest="cloud_command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the ledger service",
        description="Serve the ledger's HTTP API: batch ingest with full re-verification, the "
        "verifiable log (signed checkpoints, proofs, proof bundles), the registry, OpenAPI at "
        "/v1/openapi.json and Prometheus metrics at /metrics. The log key is created in the "
        "data directory on first start (log.skey: keep it secret and backed up).",
        epilog=examples(
            SERVE_EXAMPLE,
            "pharmasync cloud serve --data-dir cloud-data --owner @owner.pub --port 8480 "
            "--database postgresql://postgres@127.0.0.1/pharmasync",
        ),
    )
    serve.add_argument(
        "--data-dir",
        type=startup.data_dir,
        default=Path("cloud-data"),
        help="default: ./cloud-data",
    )
    serve.add_argument("--host", type=startup.host, default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument(
        "--port", type=startup.port, default=settings.DEFAULT_PORT, help="default: %(default)s"
    )
    serve.add_argument(
        "--database",
        help="postgresql://user@host/db for PostgreSQL (several workers may share it); "
        "default: SQLite in the data directory",
    )
    serve.add_argument(
        "--origin",
        default=settings.DEFAULT_ORIGIN,
        help="the log's name in its checkpoints, used when the log key is first created",
    )
    serve.add_argument(
        "--owner",
        type=hex_bytes,
        action="append",
        default=[],
        metavar="KEY|@FILE",
        help="x-only key (hex, or @FILE holding it, as `cloud keygen` writes) allowed to sign "
        "registry changes; repeatable. Also read, one per line, from DATA_DIR/owners",
    )
    serve.add_argument(
        "--regulator",
        type=regulator_key,
        action="append",
        default=[],
        metavar="KEY|@FILE",
        help="the contracts' regulator, who admits participants: its did:key, or its x-only "
        "key (hex, or @FILE holding it, as `cloud keygen` writes); repeatable",
    )
    serve.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="URL=VKEY",
        help="a witness (pharmasync witness) to ask for cosignatures of each new checkpoint: "
        "its address and cosignature verifier key; repeatable",
    )
    serve.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser(
        "keygen",
        help="create an owner key for signing registry changes",
        description="Create a BIP-340 secret key file (mode 0600) and its public key beside "
        "it (OUT with the suffix .pub), and print the public key; give it to `pharmasync cloud "
        "serve --owner @OWNER.pub`.",
        epilog=examples(
            "pharmasync cloud keygen owner.key",
            "pharmasync cloud keygen second-owner.key",
            "pharmasync cloud keygen regulator.key",
            "pharmasync cloud keygen maker.key",
            "pharmasync cloud keygen wholesaler.key",
            "pharmasync cloud keygen auditor.key",
            "pharmasync cloud keygen new-regulator.key",
        ),
    )
    keys.add_argument("out", type=Path, help="where to write the secret key (hex)")
    keys.set_defaults(handler=keygen)

    reg = commands.add_parser(
        "register",
        help="register a gateway or box, or attach a box to a lot (signed by an owner)",
        description="Sign a registry change with an owner key and send it to the cloud. "
        "The change is kept in the log: auditors see who registered what, and when.",
        epilog=examples(*REGISTER_EXAMPLES),
    )
    reg.add_argument("--cloud", default=f"http://127.0.0.1:{settings.DEFAULT_PORT}")
    reg.add_argument("--owner-key", type=Path, required=True, help="owner secret key file")
    what = reg.add_subparsers(dest="op", metavar="WHAT", required=True)
    gw = what.add_parser(
        "gateway",
        help="register a gateway by its public key",
        epilog=examples(REGISTER_EXAMPLES[0]),
    )
    gw.add_argument("key", type=hex_bytes, metavar="KEY|@FILE")
    gw.add_argument("--site", required=True)
    box = what.add_parser(
        "box", help="register a sensor box by its public key", epilog=examples(REGISTER_EXAMPLES[1])
    )
    box.add_argument("key", type=hex_bytes, metavar="KEY|@FILE")
    box.add_argument("--site", required=True)
    box.add_argument("--label", default="")
    att = what.add_parser(
        "attach",
        help="attach a box to a lot, shipment or zone",
        epilog=examples(REGISTER_EXAMPLES[2]),
    )
    att.add_argument("key", type=hex_bytes, metavar="KEY|@FILE")
    att.add_argument("--subject", required=True, help="lot, shipment or zone id")
    att.add_argument("--start", type=int, help="Unix seconds (default: now)")
    att.add_argument("--end", type=int, help="Unix seconds (default: open)")
    reg.set_defaults(handler=_register)

    own = commands.add_parser(
        "owners",
        help="add or remove an owner (signed by a current owner)",
        description="Sign an owner change with a current owner's key and send it to the cloud. "
        "Owners are on the log (configuration entries, docs/protocol.md): `cloud serve --owner` "
        "names only the first ones, on a log that has none yet.",
        epilog=examples(*OWNERS_EXAMPLES),
    )
    _config_arguments(own, "add or remove the owner KEY", "the owner's x-only key")

    ack = commands.add_parser(
        "ack-keys",
        help="authorise or withdraw a key that acknowledges a site's alarms from afar",
        description="Sign an acknowledgement-key change with a current owner's key and send it "
        'to the cloud: KEY may then sign alarm acknowledgements (docs/protocol.md, "Signed '
        'alarm acknowledgement") for the gateways of site SITE, which the cloud relays '
        "(POST /v1/alarm-acks) and those gateways fetch, check against the log and apply.",
        epilog=examples(*ACK_KEYS_EXAMPLES),
    )
    _config_arguments(ack, "authorise or withdraw KEY", "the signer's x-only key")
    ack.add_argument("--site", required=True, help="the site whose alarms KEY may acknowledge")

    grants = commands.add_parser(
        "grants",
        help="give or withdraw a replay grant (signed by a regulator)",
        description="Sign a replay-grant change with a current regulator's key and send it to "
        "the cloud: KEY may then fetch the transaction bodies of those contracts (GET /v1/tx) "
        "and replay them (`pharmasync verify --replay --key`). Grants are on the log "
        "(configuration entries, docs/protocol.md), so an auditor knows them from the log.",
        epilog=examples(*GRANTS_EXAMPLES),
    )
    _regulator_arguments(grants)
    grants.add_argument("op", choices=("add", "remove"), help="give or withdraw the grant")
    grants.add_argument(
        "key", type=regulator_key, metavar="KEY", help="did:key, x-only hex or @FILE"
    )
    grants.add_argument(
        "--contracts",
        type=_contract_names,
        required=True,
        help=f"comma-separated, of: {', '.join(c.name for c in catalog.CONTRACTS)}",
    )
    grants.set_defaults(handler=_contract_authority)

    regs = commands.add_parser(
        "regulators",
        help="hand the contracts over to other regulators (signed by a current one)",
        description="Sign a regulator change with a current regulator's key and send it: the "
        "KEYs replace the regulators from that log entry on. Each transaction is judged under "
        "the regulators of its own log position, so what the old regulators signed stands "
        "(docs/contracts.md).",
        epilog=examples(REGULATORS_EXAMPLE),
    )
    _regulator_arguments(regs)
    regs.add_argument(
        "keys", type=regulator_key, nargs="+", metavar="KEY", help="did:key, x-only hex or @FILE"
    )
    regs.set_defaults(handler=_contract_authority, op="regulators")


def _config_arguments(parser: argparse.ArgumentParser, op_help: str, key_help: str) -> None:
    """The arguments of a configuration change (`cloud owners`, `cloud ack-keys`)."""
    parser.add_argument("--cloud", default=f"http://127.0.0.1:{settings.DEFAULT_PORT}")
    parser.add_argument(
        "--owner-key", type=Path, required=True, help="a current owner's secret key"
    )
    parser.add_argument("op", choices=("add", "remove"), help=op_help)
    parser.add_argument("key", type=hex_bytes, metavar="KEY|@FILE", help=key_help)
    parser.set_defaults(handler=_config_change)


def read_owners(data_dir: Path) -> list[bytes]:
    """Owner keys listed in DATA_DIR/owners (hex, one per line, # comments)."""
    path = data_dir / "owners"
    if not path.exists():
        return []
    keys = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                keys.append(bytes.fromhex(text))
            except ValueError:
                raise ValueError(f"{path}:{n}: not a hex key: {text!r}") from None
    return keys


def regulator_key(text: str) -> bytes:
    """argparse type: the x-only key of a did:key (secp256k1), of 64 hex characters, or of
    the hex in the file `@PATH` (the OUT.pub that `cloud keygen` writes)."""
    if text.startswith("@"):
        return hex_bytes(text)
    if text.startswith("did:"):
        try:
            return didkey.to_xonly(text)
        except didkey.DidKeyError as e:
            raise argparse.ArgumentTypeError(f"not a secp256k1 did:key: {e.detail}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f"got {text[:80]!r}, want a did:key or 64 hex (x-only)")
    return key


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_json)
    try:
        config = settings.CloudSettings(
            data_dir=args.data_dir,
            database=args.database,
            origin=args.origin,
            owners=tuple(args.owner + read_owners(args.data_dir)),
            regulators=tuple(args.regulator),
            witnesses=tuple(args.witness),
        )
        for spec in config.witnesses:
            witnessing.parse_peer(spec)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def ready() -> None:
        # What start-up rebuilt by replay lives as long as the server: keep it out of the
        # collector's full passes (one over ~0.5 M objects took 0.3-0.7 s inside a request).
        gc.freeze()
        print(
            f"cloud ledger on http://{args.host}:{args.port}  (data: {config.data_dir})",
            flush=True,
        )
        if not config.owners:
            log.warning(
                "no --owner keys: unless the log names owners already, registry changes "
                "will be refused (see --owner)"
            )

    opening = (
        f"the database {startup.redact(config.database)}"
        if config.database
        else f"the ledger in {config.data_dir}"
    )
    # One server per data folder; workers on one PostgreSQL database share it (its log key).
    with datalock.acquire(config.data_dir, shared=config.database is not None):
        asyncio.run(
            startup.serve_app(
                make_app(config),
                args.host,
                args.port,
                opening=opening,
                on_ready=ready,
                access_log_class=AccessLog,
            )
        )
    return 0


def _regulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a regulator-signed configuration change."""
    parser.add_argument("--cloud", default=f"http://127.0.0.1:{settings.DEFAULT_PORT}")
    parser.add_argument(
        "--regulator-key", type=Path, required=True, help="a current regulator's secret key"
    )


def _contract_names(text: str) -> tuple[str, ...]:
    """argparse type: contract names, comma-separated, each one the ledger runs."""
    known = {c.name for c in catalog.CONTRACTS}
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    if not names or not set(names) <= known:
        raise argparse.ArgumentTypeError(f"got {text[:80]!r}, want some of {sorted(known)}")
    return names


def _contract_authority(args: argparse.Namespace) -> int:
    """`cloud grants` and `cloud regulators`: sign the change with a regulator's key, send it."""
    if (secret := read_secret(args.regulator_key, "--regulator-key")) is None:
        return 2
    now = int(time.time())
    try:
        if args.op == "regulators":
            keys = tuple(sorted(set(args.keys)))
            change = config_entry.ConfigChange(config_entry.REGULATOR, now, owners=keys)
            done = f"regulators now {', '.join(k.hex()[:16] + '…' for k in keys)}"
        else:
            op = config_entry.GRANT_ADD if args.op == "add" else config_entry.GRANT_REMOVE
            change = config_entry.ConfigChange(op, now, key=args.key, contracts=args.contracts)
            verb = "given to" if args.op == "add" else "withdrawn from"
            done = f"replay grant for {', '.join(args.contracts)} {verb} {args.key.hex()}"
    except config_entry.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    request = config_entry.sign_request(secret, change)
    if (index := _send(args.cloud, "/v1/config", request)) is None:
        return 1
    print(f"{done} by regulator {schnorr.pubkey(secret).hex()[:16]}… (log index {index})")
    return 0


def _send(cloud: str, path: str, request: dict[str, object]) -> int | None:
    """POST a signed request to the cloud's `path`; return its log index, or print why
    not and return None."""
    try:
        status, answer = asyncio.run(post_json(f"{cloud.rstrip('/')}{path}", request))
    except (aiohttp.ClientError, ValueError) as e:
        print(f"error: {cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    if status != 201:
        print(
            f"error: HTTP {status}: {answer.get('reason')}: {answer.get('detail')}", file=sys.stderr
        )
        return None
    index = answer.get("log_index")
    return index if isinstance(index, int) else None


def _config_change(args: argparse.Namespace) -> int:
    """`cloud owners` and `cloud ack-keys` (with --site): sign the change, send it."""
    if (secret := read_secret(args.owner_key, "--owner-key")) is None:
        return 2
    add = args.op == "add"
    site = getattr(args, "site", None)
    if site is None:
        op = config_entry.ADD if add else config_entry.REMOVE
        done = f"owner {args.key.hex()} {'added' if add else 'removed'}"
    else:
        op = config_entry.ACK_KEY_ADD if add else config_entry.ACK_KEY_REMOVE
        done = f"ack key {args.key.hex()} {'authorised' if add else 'withdrawn'} for site {site}"
    try:
        change = config_entry.ConfigChange(op, int(time.time()), key=args.key, site=site)
    except config_entry.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    request = config_entry.sign_request(secret, change)
    if (index := _send(args.cloud, "/v1/config", request)) is None:
        return 1
    print(f"{done} by owner {schnorr.pubkey(secret).hex()[:16]}… (log index {index})")
    return 0


def _register(args: argparse.Namespace) -> int:
    if (secret := read_secret(args.owner_key, "--owner-key")) is None:
        return 2
    now = int(time.time())
    change: registry.Change
    try:
        if args.op == "gateway":
            change = registry.GatewayRegistration(args.key, now, site=args.site)
        elif args.op == "box":
            change = registry.BoxRegistration(args.key, now, site=args.site, label=args.label)
        else:
            start = now if args.start is None else args.start
            change = registry.Attachment(
                args.key, now, subject=args.subject, start=start, end=args.end
            )
    except registry.RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    request = registry.sign_request(secret, change)
    if (index := _send(args.cloud, "/v1/registry", request)) is None:
        return 1
    print(
        f"{args.op} {args.key.hex()} registered by owner {schnorr.pubkey(secret).hex()[:16]}… "
        f"(log index {index})"
    )
    return 0


async def post_json(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    """POST `body`; return the status and the JSON object answered. Raises ValueError
    (JsonError) for an answer that is no bounded JSON object, aiohttp.ClientError."""
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await read_answer(resp, 64 * 1024)


async def read_answer(resp: aiohttp.ClientResponse, limit: int) -> dict[str, Any]:
    """Read `resp`'s body as a JSON object of at most `limit` bytes, reading no further
    than that (a server may send an endless body). Raises JsonError (a ValueError) naming
    the HTTP status: a proxy's error page is not JSON."""
    what = f"answer (HTTP {resp.status})"
    data = bytearray()
    async for chunk in resp.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise jsonbound.JsonError(what, f"more than {limit} bytes", f"at most {limit}", 413)
    answer = jsonbound.loads(data, max_bytes=limit, what=what)
    if not isinstance(answer, dict):
        raise jsonbound.JsonError(what, type(answer).__name__, "a JSON object")
    return answer
