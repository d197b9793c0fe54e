"""The log's entry kinds: one table, kind byte -> name, parse, verify, fold.

A log entry is a kind byte and its payload (docs/protocol.md, "The ledger's log"). Every
reader of the log that checks entries (the follower `pharmasync verify --cloud`, the proof
bundle verifier, the log itself) looks a kind up here; a new contract adds rows, not
branches (DESIGN.md, "How a contract runs"). Each row says what an auditor checks:

    parse   the payload's form (its bytes decode): the entry alone
    verify  what else holds of the entry alone (a signature over the payload)
    fold    how it moves the state of the log read so far (`LogState`), checking that it
            may: a gateway's batch chain, the owner set, a gateway's event seq

    0x01 batch     a gateway's signed batch header (gateway/batch.py); its signature; the
                   batch after its gateway's newest (batch.check_follows)
    0x02 registry  an owner's signed registry change (gateway/registry_change.py); its
                   signer is an owner at that point of the log (gateway/config_entry.py)
    0x03 tx        a contract transaction's public part (cloud/contracts/entries.py): its
                   form only; the body is private, checked by `verify --replay` with a grant
    0x04 state     a state root (DESIGN.md, "State root"): its form, and that it covers
                   entries before itself only
    0x05 event     a gateway's signed event (gateway/event.py); its signature; the next of
                   its gateway's event seqs, from 0
    0x06 config    the owners' bootstrap and signed changes (gateway/config_entry.py); the
                   authority rules, and the bootstrap naming the pinned owners if pinned

Any other kind byte (0x07, the audit root, included until its row lands) is refused,
naming its value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.contracts import entries as tx_entries
from cloud.contracts import stateroot
from gateway import batch, config_entry, event, registry_change

Facts = Sequence[tuple[str, str]]  # (label, value) lines of a report

ENTRY_BATCH: Final = 0x01
ENTRY_REGISTRY: Final = registry_change.ENTRY_REGISTRY  # 0x02
ENTRY_TX: Final = tx_entries.KIND  # 0x03
ENTRY_STATE_ROOT: Final = 0x04
ENTRY_EVENT: Final = 0x05
ENTRY_CONFIG: Final = config_entry.ENTRY_CONFIG  # 0x06


class Rule(enum.Enum):
    """Which check an entry failed; a report names the alarm by it."""

    FORM = "form"  # the entry alone: bytes that do not decode, a signature that fails
    CHAIN = "chain"  # a batch that does not follow its gateway's newest
    AUTHORITY = "authority"  # a change its signer may not make at that point of the log
    SEQUENCE = "sequence"  # a gateway event that is not its gateway's next


class EntryError(ValueError):
    """A log entry that fails a check: `rule` says which, str() (`summary`) says got/want,
    `facts` are (label, value) lines naming the entry (its index first, once `check` has
    seen it) and what it carries."""

    def __init__(self, summary: str, rule: Rule = Rule.FORM, facts: Facts = ()) -> None:
        super().__init__(summary)
        self.summary = summary
        self.rule = rule
        self.facts = tuple(facts)


@dataclass
class Owners:
    """The authority as of the entries checked so far (empty: no configuration entry yet):
    the owner keys, the keys that may acknowledge alarms of a site, the first owner
    keys pinned out of band (`verify --owner`), if any, the contracts' regulators and the
    replay grants."""

    keys: frozenset[bytes] = frozenset()
    pinned: frozenset[bytes] | None = None
    ack_keys: config_entry.AckKeys = frozenset()  # (site, key) that may acknowledge alarms
    regulators: frozenset[bytes] = frozenset()  # the contracts' regulators (x-only keys)
    grants: config_entry.Grants = frozenset()  # (key, contract) that may replay bodies


@dataclass
class LogState:
    """What the entries read so far fold into: each gateway's newest batch, each gateway's
    last event seq, the owners. Rows' `fold` functions update it in place."""

    gateways: dict[bytes, batch.ChainHead] = field(default_factory=dict)
    events: dict[bytes, int] = field(default_factory=dict)
    owners: Owners = field(default_factory=Owners)


@dataclass(frozen=True)
class Kind:
    """One row of the table (module docstring). `parse` takes the payload (the entry
    without its kind byte); `context` gives the facts that name such an entry in a report
    before it is parsed; `authority` marks kinds checked against the owners."""

    byte: int
    name: str
    parse: Callable[[bytes], Any]
    verify: Callable[[Any], None]
    fold: Callable[[LogState, int, Any], None]
    authority: bool = False
    context: Callable[[LogState, bytes], Facts] = lambda state, payload: ()


def _nothing(*_: object) -> None:
    """A check with nothing to do for this kind."""


# -- 0x01 batch -------------------------------------------------------------------------------


def _batch_facts(header: batch.BatchHeader) -> Facts:
    return [
        ("gateway", header.gateway_key.hex()),
        ("batch", str(header.seq)),
        ("header hash", header.hash().hex()),
    ]


def _parse_batch(payload: bytes) -> batch.BatchHeader:
    try:
        return batch.decode(payload)
    except batch.BatchError as e:
        raise EntryError(f"batch header {e}") from e


def _verify_batch(header: batch.BatchHeader) -> None:
    if not header.verify_signature():
        raise EntryError("the gateway signature does not verify", facts=_batch_facts(header))


def _fold_batch(state: LogState, index: int, header: batch.BatchHeader) -> None:
    try:
        batch.check_follows(header, state.gateways.get(header.gateway_key))
    except batch.ChainError as e:
        raise EntryError(e.detail, Rule.CHAIN, _batch_facts(header)) from e
    state.gateways[header.gateway_key] = batch.ChainHead(header.seq, header.hash())


# -- 0x02 registry and 0x06 configuration: the authority --------------------------------------


@dataclass(frozen=True)
class Signed:
    """A registry or configuration entry whose form and signature held: the whole entry
    (the authority rules read it) and its signer."""

    entry: bytes
    signer: bytes


def _authority_facts(state: LogState, payload: bytes) -> Facts:
    owners = ", ".join(sorted(k.hex() for k in state.owners.keys)) or "none yet"
    return [("signer", payload[:32].hex()), ("owners", owners)]


def _parse_registry(payload: bytes) -> Signed:
    try:
        signer, _, _ = registry_change.parse_entry(payload)
    except registry_change.RegistryError as e:
        raise EntryError(f"registry change {e}") from e
    return Signed(bytes([ENTRY_REGISTRY]) + payload, signer)


def _parse_config(payload: bytes) -> Signed:
    try:
        signer, _ = config_entry.parse_entry(payload)
    except config_entry.ConfigError as e:
        raise EntryError(f"config change: {e}") from e
    return Signed(bytes([ENTRY_CONFIG]) + payload, signer)


def _fold_authority(state: LogState, index: int, signed: Signed) -> None:
    """Apply the authority rules (gateway/config_entry.py) to a registry or configuration
    entry; the log's first configuration entry must name the pinned owners, if pinned."""
    owners = state.owners
    name = KINDS[signed.entry[0]].name
    try:
        first_owners = signed.entry[0] == ENTRY_CONFIG and not owners.keys
        # the first owners' entry is pinned; the regulator's entries are not the owners'
        if (
            first_owners
            and owners.pinned is not None
            and not config_entry.is_contract_op(signed.entry)
        ):
            config_entry.check_pinned(signed.entry, owners.pinned)
        before = config_entry.Authority(
            owners.keys, owners.ack_keys, owners.regulators, owners.grants
        )
        after = config_entry.next_authority(before, signed.entry)
    except config_entry.ConfigError as e:
        bad_form = e.reason in ("entry", "signature")
        raise EntryError(f"{name} change: {e}", Rule.FORM if bad_form else Rule.AUTHORITY) from e
    except registry_change.RegistryError as e:
        raise EntryError(f"registry change {e}") from e
    owners.keys, owners.ack_keys = after.owners, after.ack_keys
    owners.regulators, owners.grants = after.regulators, after.grants


# -- 0x03 contract transaction ----------------------------------------------------------------


def _parse_tx(payload: bytes) -> tx_entries.TxEntry:
    try:
        return tx_entries.parse(bytes([ENTRY_TX]) + payload)
    except tx_entries.EntryError as e:
        raise EntryError(f"contract transaction {e.detail}") from e


# -- 0x04 state root --------------------------------------------------------------------------


def parse_state_root(payload: bytes) -> stateroot.StateRoot:
    """Return the StateRoot of a 0x04 entry's payload (cloud/contracts/stateroot.py, the one
    definition of the format). Raises EntryError."""
    try:
        return stateroot.parse(bytes([ENTRY_STATE_ROOT]) + payload)
    except stateroot.StateRootError as e:
        raise EntryError(f"state root: {e}") from e


def _fold_state_root(state: LogState, index: int, root: stateroot.StateRoot) -> None:
    if root.covers >= index:
        raise EntryError(
            f"state root covers entries up to {root.covers}, want below its own index {index}"
        )


# -- 0x05 gateway event -----------------------------------------------------------------------


def _event_facts(ev: event.Event) -> Facts:
    return [("gateway", ev.gateway.hex()), ("event", str(ev.seq)), ("kind", ev.kind)]


def _parse_event(payload: bytes) -> event.Event:
    try:
        return event.decode(payload)
    except event.EventError as e:
        raise EntryError(f"gateway event {e}") from e


def _verify_event(ev: event.Event) -> None:
    if not ev.verify_signature():
        raise EntryError("the gateway's event signature does not verify", facts=_event_facts(ev))


def _fold_event(state: LogState, index: int, ev: event.Event) -> None:
    want = state.events.get(ev.gateway, -1) + 1
    if ev.seq != want:
        raise EntryError(f"got event {ev.seq}, want event {want}", Rule.SEQUENCE, _event_facts(ev))
    state.events[ev.gateway] = ev.seq


# -- the table --------------------------------------------------------------------------------

TABLE: Final = (
    Kind(ENTRY_BATCH, "batch", _parse_batch, _verify_batch, _fold_batch),
    Kind(
        ENTRY_REGISTRY,
        "registry",
        _parse_registry,
        _nothing,  # the owner's signature: checked by parse (gateway/signed_change.py)
        _fold_authority,
        authority=True,
        context=_authority_facts,
    ),
    Kind(ENTRY_TX, "tx", _parse_tx, _nothing, _nothing),  # the body: `verify --replay`
    Kind(ENTRY_STATE_ROOT, "state root", parse_state_root, _nothing, _fold_state_root),
    Kind(ENTRY_EVENT, "event", _parse_event, _verify_event, _fold_event),
    Kind(
        ENTRY_CONFIG,
        "config",
        _parse_config,
        _nothing,  # the signature (none for the bootstrap): checked by parse
        _fold_authority,
        authority=True,
        context=_authority_facts,
    ),
)
KINDS: Final = {kind.byte: kind for kind in TABLE}
AUTHORITY_KINDS: Final = frozenset(kind.byte for kind in TABLE if kind.authority)


def kind_of(entry: bytes) -> Kind:
    """Return the row of a log entry's kind byte. Raises EntryError naming an unknown
    kind byte (or an empty entry)."""
    if not entry or entry[0] not in KINDS:
        known = ", ".join(f"{byte:02x}" for byte in KINDS)
        raise EntryError(f"entry kind: got {entry[:1].hex() or 'nothing'}, want one of {known}")
    return KINDS[entry[0]]


def check(state: LogState, index: int, entry: bytes) -> tuple[Kind, Any]:
    """Check log entry `index` against the log before it (`state`) and fold it in; return
    its row and parsed value (a BatchHeader for a batch).

    Raises EntryError whose facts start with ("entry", index): an unknown kind, a payload
    that does not parse or verify (Rule.FORM), or a fold that refuses it (Rule.CHAIN,
    AUTHORITY, SEQUENCE). `state` is unchanged when it raises.
    """
    try:
        kind = kind_of(entry)
    except EntryError as e:
        e.facts = (("entry", str(index)),)
        raise
    payload = bytes(entry[1:])
    try:
        value = kind.parse(payload)
        kind.verify(value)
        kind.fold(state, index, value)
    except EntryError as e:
        e.facts = (("entry", str(index)), *kind.context(state, payload), *e.facts)
        raise
    return kind, value
