"""The participants contract (docs/contracts.md §3): the regulator admits, suspends and
reinstates participants; a participant (or the regulator, for a lost key) rotates its key.

A participant is named in every record by its id, the did:key it was admitted with, which
never changes; its key records map each x-only key (the identity a BIP-340 signature proves,
see didkey) to that id. A rotation marks the old key rotated and adds the new one, so the
participant's role, holdings and certificates pass to the new DID without touching them.
The regulators are not participants: their x-only keys are the State's configuration (the
log's 0x06 entries).

Records (both private: participants' details are not in the tree in the clear):

    PARTICIPANT (id)        {"id", "did" (current), "role", "name", "region",
                             "licence": {"number", "issuer"}, "status": "active" |
                             "suspended", "since" (ms), "reason"}
    KEY (x-only key, hex)   {"participant": id, "did", "current": true | false}
    OWNER (owner key, hex)  {"participant": id}  a registry owner key the admission names
                            (optional `owner_keys`), so the participant controls its boxes
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from cloud.contracts import access, args
from cloud.contracts.didkey import DidKeyError, to_xonly
from cloud.contracts.engine import (
    Conflict,
    Context,
    Contract,
    ContractError,
    Forbidden,
    Invalid,
    Participant,
    Record,
    RecordType,
    View,
)

NAME: Final = "participants"
PARTICIPANT: Final = RecordType(NAME, 1, "participant", private=True)
KEY: Final = RecordType(NAME, 2, "key", private=True)
OWNER: Final = RecordType(NAME, 3, "owner", private=True)
MAX_OWNER_KEYS: Final = 16
ADMITTED_ROLES: Final = frozenset(access.ROLES) - {"regulator"}  # regulators are configured
ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"
# ISO 3166-1 alpha-2: two capital letters (the list of assigned codes changes; the shape
# does not).
_REGION: Final = re.compile("[A-Z]{2}")
# An x-only key written in lower-case hex (owner keys here, box keys in lots_boxes.py).
HEX32: Final = re.compile("[0-9a-f]{64}")


def identify(view: View, did: str) -> Participant:
    """Return who signed with `did`: a configured regulator, or the active participant whose
    current key it is. Raises Forbidden "participant": not admitted, rotated, suspended."""
    try:
        xonly = to_xonly(did)
    except DidKeyError as e:
        raise Forbidden("participant", e.detail) from None
    if xonly in view.regulators:
        return Participant(did, did, "regulator")
    record = _keyed(
        view, did, xonly, lambda _, detail: Forbidden("participant", detail), shared=True
    )
    if record["status"] == SUSPENDED:
        raise Forbidden("participant", f"{did} is suspended: {record['reason']}")
    return Participant(record["id"], record["did"], record["role"])


def _shared(record: Record | None) -> dict[str, Any] | None:
    """The record's JSON object, parsed once per distinct bytes and shared: only read it.
    (Every transaction names its signer's key and participant records: the same few.)"""
    return None if record is None else _parsed(record.canonical)


@lru_cache(maxsize=4096)
def _parsed(canonical: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(canonical)
    return value


def current(view: View, xonly: bytes) -> dict[str, Any] | None:
    """Return the participant record whose current key is `xonly`, or None (not admitted, or
    the key was rotated away)."""
    key = view.get(KEY, xonly.hex())
    if key is None or not key["current"]:
        return None
    return view.get(PARTICIPANT, key["participant"])


def by_id(view: View, participant_id: str) -> dict[str, Any]:
    """Return the participant record of an id that records name. Raises KeyError if there
    is none (records only name admitted participants)."""
    record = view.get(PARTICIPANT, participant_id)
    if record is None:
        raise KeyError(participant_id)
    return record


def controller(view: View, owner: bytes) -> str | None:
    """Return the id of the participant that controls registry owner key `owner` (x-only,
    docs/contracts.md §4): the one whose admission named it (`owner_keys`), else the one
    whose current key it is; None if no one does."""
    named = view.get(OWNER, owner.hex())
    if named is not None:
        return str(named["participant"])
    record = current(view, owner)
    return None if record is None else str(record["id"])


def _owner_keys(value: object) -> list[str]:
    """Return admit's owner_keys: 1 to MAX_OWNER_KEYS distinct x-only keys, lower-case hex.
    Raises Invalid "args.owner_keys"."""
    if type(value) is not list or not 1 <= len(value) <= MAX_OWNER_KEYS:
        raise Invalid("args.owner_keys", f"want a list of 1 to {MAX_OWNER_KEYS} x-only keys")
    for i, key in enumerate(value):
        if type(key) is not str or not HEX32.fullmatch(key):
            raise Invalid(f"args.owner_keys[{i}]", f"got {str(key)[:70]!r}, want 64 hex digits")
    if len(set(value)) != len(value):
        raise Invalid("args.owner_keys", "keys repeat")
    return list(value)


def _regulator_only(ctx: Context) -> None:
    if ctx.me.role != "regulator":
        raise Forbidden("role", f"{ctx.tx.body.type}: the regulator's, not a {ctx.me.role}'s")


def _keyed(
    view: View,
    did: str,
    xonly: bytes,
    refuse: Callable[[str, str], ContractError],
    shared: bool = False,
) -> dict[str, Any]:
    """Return the participant whose current key is `xonly` (named `did`): a copy, or with
    `shared` the parse the records' bytes share (_shared: only read it). Raises
    refuse("admitted", ...) for a key no one was admitted with, refuse("rotated", ...) for
    a key rotated away."""

    def get(rtype: RecordType, *fields: str) -> dict[str, Any] | None:
        return _shared(view.record(rtype, *fields)) if shared else view.get(rtype, *fields)

    key = get(KEY, xonly.hex())
    if key is None:
        raise refuse("admitted", f"{did} is not an admitted participant")
    if not key["current"]:
        raise refuse("rotated", f"{did} was rotated: the participant signs with its new key")
    record = get(PARTICIPANT, key["participant"])
    assert record is not None, "a key record names an admitted participant"
    return record


def _target(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Return args.did and its participant record. Raises Conflict "admitted" or "rotated"."""
    did, xonly = args.did(ctx.args, "did")
    return did, _keyed(ctx, did, xonly, Conflict)


def admit(ctx: Context) -> None:
    """Admit a participant: args did, role, name, region, licence {number, issuer}, and
    optionally owner_keys (registry owner keys whose boxes it controls). Regulator only.
    Conflict "admitted" if its x-only key is already known, "owner key" if another
    participant's admission named one of the owner keys."""
    _regulator_only(ctx)
    args.exact(ctx.args, ("did", "role", "name", "region", "licence"), ("owner_keys",))
    owners = _owner_keys(ctx.args["owner_keys"]) if "owner_keys" in ctx.args else []
    did, xonly = args.did(ctx.args, "did")
    role = args.choice(ctx.args, "role", ADMITTED_ROLES)
    name = args.text(ctx.args, "name")
    region = ctx.args["region"]
    if type(region) is not str or not _REGION.fullmatch(region):
        raise Invalid("args.region", f"got {str(region)[:20]!r}, want ISO 3166-1 alpha-2")
    licence = ctx.args["licence"]
    if type(licence) is not dict:
        raise Invalid("args.licence", "want an object {number, issuer}")
    with args.within("licence"):
        args.exact(licence, ("number", "issuer"))
        args.ident(licence, "number")
        args.text(licence, "issuer")
    if xonly in ctx.regulators:
        raise Conflict("admitted", f"{did} is a regulator's key")
    if ctx.get(KEY, xonly.hex()) is not None:
        raise Conflict("admitted", f"{did}'s key is already a participant's (or was)")
    for owner in owners:
        if ctx.get(OWNER, owner) is not None:
            raise Conflict("owner key", f"owner key {owner} is another participant's")
        ctx.put(OWNER, [owner], {"participant": did})
    ctx.put(
        PARTICIPANT,
        [did],
        {
            "id": did,
            "did": did,
            "role": role,
            "name": name,
            "region": region,
            "licence": {"number": licence["number"], "issuer": licence["issuer"]},
            "status": ACTIVE,
            "since": ctx.time,
            "reason": "admitted",
        },
    )
    ctx.put(KEY, [xonly.hex()], {"participant": did, "did": did, "current": True})
    ctx.notify(did, {"type": "admitted", "role": role})


def _set_status(ctx: Context, want: str, new: str) -> None:
    _regulator_only(ctx)
    args.exact(ctx.args, ("did", "reason"))
    reason = args.text(ctx.args, "reason")
    did, record = _target(ctx)
    if record["status"] != want:
        rule = "suspended" if record["status"] == SUSPENDED else "not suspended"
        raise Conflict(rule, f"{did} is {record['status']}, want {want}")
    record.update(status=new, since=ctx.time, reason=reason)
    ctx.put(PARTICIPANT, [record["id"]], record)
    ctx.notify(record["did"], {"type": new, "reason": reason})


def suspend(ctx: Context) -> None:
    """Suspend a participant: args did, reason. Regulator only. Conflict "suspended"."""
    _set_status(ctx, ACTIVE, SUSPENDED)


def reinstate(ctx: Context) -> None:
    """Reinstate a suspended participant: args did, reason. Conflict "not suspended"."""
    _set_status(ctx, SUSPENDED, ACTIVE)


def rotate(ctx: Context) -> None:
    """Move a participant to a new key: args did (its current DID), new_did. Signed by that
    DID's own key, or by the regulator when the key is lost. Forbidden "access" for another
    participant's DID; Conflict "rotated"/"admitted" for a DID that is not current,
    "key taken" if the new x-only key is or was anyone's."""
    me = ctx.me
    args.exact(ctx.args, ("did", "new_did"))
    did, record = _target(ctx)
    if me.role != "regulator" and record["id"] != me.id:
        column = access.column_of(me.role, NAME, "rotate")
        assert column is not None
        raise Forbidden("access", f"{access.cell(me.role, column)}: {did} is not the signer's")
    new_did, new_xonly = args.did(ctx.args, "new_did")
    if new_xonly in ctx.regulators or ctx.get(KEY, new_xonly.hex()) is not None:
        raise Conflict("key taken", f"{new_did}'s key is or was a participant's or a regulator's")
    old_xonly = to_xonly(record["did"])
    pid = record["id"]
    ctx.put(KEY, [old_xonly.hex()], {"participant": pid, "did": record["did"], "current": False})
    ctx.put(KEY, [new_xonly.hex()], {"participant": pid, "did": new_did, "current": True})
    record["did"] = new_did
    ctx.put(PARTICIPANT, [record["id"]], record)
    ctx.notify(new_did, {"type": "rotated", "from": did})


CONTRACT: Final = Contract(
    NAME, {"admit": admit, "suspend": suspend, "reinstate": reinstate, "rotate": rotate}
)
