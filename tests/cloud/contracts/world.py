"""A small world for contract tests: a regulator and named participants with fixed keys,
transactions signed with deterministic nonces, times and salts, applied through the real
engine (cloud/contracts/catalog.py), and a check that a refusal leaves the state as it was."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from cloud.contracts import catalog, didkey, tx
from cloud.contracts.engine import Applied, ContractError, State
from device import schnorr

# 2026-12-01T00:00:00Z: every transaction's own time counts up from here, a second apart.
T0 = int(datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC).timestamp() * 1000)
# GS1's own example GTIN-14 (Digital Link examples); its check digit 2 is verified in
# test_lots_fields.py by hand.
GTIN = "09506000134352"
PROFILE: dict[str, Any] = {
    "low_cc": 200,
    "high_cc": 800,
    "delay_consecutive_s": 900,
    "delay_cumulative_s": 3600,
    "hysteresis_cc": 50,
    "max_gap_s": 3600,
    "needs_licence": 0,
}


@dataclass(frozen=True)
class Party:
    """A key: its secret, did:key and x-only key."""

    secret: bytes

    @property
    def did(self) -> str:
        return didkey.from_secret(self.secret)

    @property
    def xonly(self) -> bytes:
        return schnorr.pubkey(self.secret)


def party(name: str) -> Party:
    """Return the fixed key named `name` (SHA-256 of the name: always a valid secret)."""
    return Party(hashlib.sha256(b"world/" + name.encode()).digest())


REGULATOR = party("regulator")


def snapshot(state: State) -> tuple[Any, ...]:
    """Everything a refusal must leave untouched."""
    return (
        dict(state.records),
        state.root,
        state.count,
        dict(state.pending),
        set(state.nonces),
        set(state.tx_ids),
    )


class World:
    """A State with one regulator, an engine, and the log of what was applied."""

    def __init__(self) -> None:
        self.engine = catalog.engine()
        self.state = State([REGULATOR.xonly])
        self.log: list[tuple[tx.SignedTx, bytes]] = []
        self.roots: list[bytes] = []
        self.n = 0
        self.parties: dict[str, Party] = {"regulator": REGULATOR}

    def sign(
        self, who: str | Party, contract: str, tx_type: str, args: dict[str, Any], **kw: Any
    ) -> tx.SignedTx:
        """Return a transaction signed by `who` (a name or a key), nonce and time fresh."""
        key = self.parties[who] if isinstance(who, str) else who
        self.n += 1
        return tx.make(
            contract,
            tx_type,
            args,
            key.secret,
            time_ms=kw.get("time_ms", T0 + self.n * 1000),
            nonce=kw.get("nonce", f"{self.n:032x}"),
            aux=bytes(32),
        )

    def apply(self, signed: tx.SignedTx) -> Applied:
        """Apply with a salt derived from the tx id; log it. Raises what the engine raises."""
        salt = hashlib.sha256(b"salt/" + signed.id.encode()).digest()
        applied = self.engine.apply(self.state, signed, salt)
        self.log.append((signed, salt))
        self.roots.append(applied.root)
        return applied

    def do(self, who: str | Party, contract: str, tx_type: str, args: dict[str, Any]) -> Applied:
        return self.apply(self.sign(who, contract, tx_type, args))

    def refuse(self, signed: tx.SignedTx) -> ContractError:
        """Require the engine to refuse `signed` and change nothing; return the refusal."""
        before = snapshot(self.state)
        with pytest.raises(ContractError) as info:
            self.apply(signed)
        assert snapshot(self.state) == before
        return info.value

    def refused(
        self, who: str | Party, contract: str, tx_type: str, args: dict[str, Any]
    ) -> ContractError:
        return self.refuse(self.sign(who, contract, tx_type, args))

    def admit(self, name: str, role: str, region: str = "DE") -> Party:
        """Admit a new participant `name` with `role`; return its key."""
        key = party(name)
        self.parties[name] = key
        self.do("regulator", "participants", "admit", admission(key, role, name, region))
        return key

    def lots(self, who: str, tx_type: str, args: dict[str, Any]) -> Applied:
        return self.do(who, "lots", tx_type, args)

    def commission(
        self, who: str, lot: str, quantity: int, nonce: str | None = None, **over: Any
    ) -> Applied:
        args = {
            "gtin": GTIN,
            "lot": lot,
            "expiry": "271200",
            "quantity": quantity,
            "unit": "pack",
            "profile": PROFILE,
        }
        kw = {} if nonce is None else {"nonce": nonce}
        return self.apply(self.sign(who, "lots", "commission", {**args, **over}, **kw))

    def ship(self, who: str, lot: str, shipment: str, to: str, quantity: int) -> Applied:
        args = {"gtin": GTIN, "lot": lot, "shipment": shipment, "quantity": quantity}
        return self.lots(who, "ship", {**args, "receiver": self.parties[to].did})

    def receive(self, who: str, shipment: str, quantity: int) -> Applied:
        return self.lots(who, "receive", {"shipment": shipment, "quantity": quantity})


def admission(key: Party, role: str, name: str, region: str = "DE") -> dict[str, Any]:
    """Return the args of an admit of `key` with `role`."""
    return {
        "did": key.did,
        "role": role,
        "name": name,
        "region": region,
        "licence": {"number": f"L-{name}", "issuer": "BfArM"},
    }


def supply_chain() -> World:
    """A world with one participant of each trading role and a second of each: M, M2, D,
    D2, R, R2, P, P2, and the operator team O."""
    world = World()
    for name, role in (
        ("M", "manufacturer"),
        ("M2", "manufacturer"),
        ("D", "distributor"),
        ("D2", "distributor"),
        ("R", "retailer"),
        ("R2", "retailer"),
        ("P", "pharmacy"),
        ("P2", "pharmacy"),
        ("O", "operator_team"),
    ):
        world.admit(name, role)
    return world
