"""EPCIS 2.0 over the ledger (docs/contracts.md §4 "EPCIS"): a lot's history as an
EPCISDocument, the SimpleEventQuery of GET /epcis/events, as the read policy lets the
reader see them (cloud/contracts/epcis.py builds the events, epcis_query.py matches them).

What it keeps: an epcis.EventIndex (for each lot, the log indices of the applied
transactions that wrote one of its records, and its cold-chain quarantines), fed by the
contract service's listeners (so rebuilt by replay at start). An export or a query reads
those transactions' stored bodies by log index (cloud/storage/contracts.py bodies_at),
then builds the events on the contract service's State under its lock, with each lot's
history from the cold chains' aggregates (lots_coldchain.history: no reading is read
again). A query without MATCH_ parameters builds every lot's events: its cost is linear in
the ledger's lots and transactions (a partner normally names its lots). Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from cloud.contracts import (
    access,
    auth,
    epcis,
    epcis_format,
    epcis_query,
    epcis_statement,
    gs1_prefixes,
    lots,
    lots_coldchain,
    lots_fields,
    participants,
    policy,
    tx,
)
from cloud.contracts.engine import State
from cloud.contracts.lots_trace import LotIndex
from cloud.services.contracts import Accepted, ContractService
from cloud.services.shared import Shared
from cloud.storage import contracts as stored
from gateway import jsonbound
from gateway.refusal import Refused

LotId = tuple[str, str]
PUBLIC: Final = "public"


def ledger_tx(index: int, tx_id: str, canonical: bytes) -> epcis.LedgerTx:
    """A stored transaction as the events read it (its body's type, time, signer, args);
    the body was checked and its signature verified when it was applied."""
    body = json.loads(canonical)
    return epcis.LedgerTx(index, tx_id, body["type"], body["time"], body["signer"], body["args"])


class EpcisService:
    """EPCIS export and query over the contract service (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService, lineage: LotIndex) -> None:
        """Start empty: register before contracts.load(), which feeds every transaction
        replayed. `lineage`: the trace index (descendants, involved) following the same
        service."""
        self.shared = shared
        self.contracts = contracts
        self.lineage = lineage
        self.index = epcis.EventIndex()
        contracts.listeners.append(self.index.apply)

    async def _reader(self, token: auth.Token | None) -> epcis.Reader:
        """Catch up on the log, then say who reads (the public without a token, or with a
        token of a role the matrix has no row for). Raises LedgerError 403 "participant"
        for a did no longer a regulator or active participant."""
        await self.contracts.load()
        if token is None or token.role not in access.READ:
            return epcis.Reader(PUBLIC)
        try:
            who = participants.identify(self.contracts.state, token.did)
        except Refused as e:
            raise self.shared.refusals.of(e) from None
        return epcis.Reader(who.role, who.id, self.lineage.involved)

    async def export(
        self,
        gtin: str,
        lot: str,
        token: auth.Token | None,
        now_ms: int | None = None,
        epc_format: str = epcis_format.NO_PREFERENCE,
    ) -> dict[str, Any]:
        """The EPCISDocument of a lot and every lot split from it (the lot alone for a reader
        who may not see lineage: product `yes`), as `token`'s reader (None: the public) may
        see it, its identifiers in `epc_format` (epcis_format.FORMATS). Caller checks gtin
        and lot. Raises LedgerError 404 "lot" (never commissioned), 403 "participant"."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        reader = await self._reader(token)
        if not self.lineage.knows(gtin, lot):
            detail = f"lot {gtin}/{lot} was never commissioned"
            raise self.shared.refusals.refuse("lot", detail, 404)
        # the descendants' events name the child lots: lineage, product `yes` only
        lineage = policy.reads(reader.role, access.PRODUCT)
        family = [(gtin, each) for each in self.lineage.descendants(gtin, lot)]
        family = family if lineage else family[:1]
        events = await self._events(family, reader, now_ms)
        return await self._formatted(epcis.document(events, now_ms), epc_format)

    async def query(
        self,
        params: Mapping[str, Sequence[str]],
        token: auth.Token | None,
        now_ms: int | None = None,
        epc_format: str = epcis_format.NO_PREFERENCE,
    ) -> tuple[dict[str, Any], epcis_query.Cursor | None]:
        """Answer a SimpleEventQuery (epcis_query: every value of each parameter; EPC URNs
        split at a registered company prefix) as an EPCISQueryDocument, its identifiers in
        `epc_format`, and the cursor of the next page (None: the last). Raises LedgerError
        400 naming the parameter (unknown, repeated or malformed, a URN not split at its
        GTIN's registered prefix), 403 "participant"."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        reader = await self._reader(token)
        urns = partial(gs1_prefixes.split_refused, self.contracts.state)
        try:
            query = epcis_query.parse(params, urns)
        except epcis_query.QueryError as e:
            raise self.shared.refusals.of(e) from None
        named = query.lots(self._lots_of_serial)
        known = self.index.touches.keys()
        wanted = list(known) if named is None else sorted(named & known)
        events = await self._events(wanted, reader, now_ms)
        shown, cursor = epcis_query.page(events, query)
        return await self._formatted(epcis.query_document(shown, now_ms), epc_format), cursor

    async def _formatted(self, document: dict[str, Any], epc_format: str) -> dict[str, Any]:
        """`document` with its identifiers as EPC URNs where their company prefix is
        registered, if `epc_format` asks for them (epcis_format.rewrite)."""
        if epc_format != epcis_format.ALWAYS_URN:
            return document

        def rewrite(state: State) -> dict[str, Any]:
            return epcis_format.rewrite(document, partial(gs1_prefixes.prefix_of, state))

        return await self.contracts.read(rewrite)

    def _lots_of_serial(self, gtin: str, serial: str) -> list[LotId]:
        """The lots a pack has been in: its registration's lot and every lot split from
        it (a split moves packs only to children), at the state last loaded; none for a
        serial never registered."""
        found = self.contracts.state.packs.find(gtin, serial)
        if found is None:
            return []
        return [(gtin, lot) for lot in self.lineage.descendants(gtin, found.registration.lot)]

    async def _events(
        self, wanted: Sequence[LotId], reader: epcis.Reader, now_ms: int
    ) -> list[epcis.Event]:
        """The events of the lots `wanted` the reader may see, merged in (time, eventID)
        order: their transactions' bodies read by log index, the events built under the
        contract service's lock (one State throughout)."""
        indices = self.index.indices(wanted)
        rows = await self.shared.store.read(lambda db: stored.bodies_at(db, indices))
        txs = {i: ledger_tx(i, tx_id, canonical) for i, tx_id, canonical in rows}

        def build(state: State) -> list[epcis.Event]:
            chains = self.contracts.chains
            out: list[epcis.Event] = []
            for gtin, lot in wanted:
                history = partial(lots_coldchain.history, state, chains, gtin, lot)
                ledger = self.index.ledger(gtin, lot, txs, history)
                out.extend(epcis.events_of(state, ledger, reader, now_ms))
            return epcis.merge(out)

        return await self.contracts.read(build)

    async def capture(self, body: bytes, envelope: object) -> tuple[Accepted, str, int]:
        """Record a partner's EPCISDocument (`body`, its exact bytes) as its signed
        statement (`envelope`: a lots `statement` transaction, cloud/contracts/
        epcis_statement.py); return the applied transaction, the document's SHA-256 (hex)
        and its number of events. Raises LedgerError: 400 a malformed body ("document",
        JSON limits) or envelope ("tx.<member>", "sig"), 401 "signature" (a forged
        statement), 422 "statement" (not a lots statement), "document" (the statement
        signs another document), "events" (another count), 409 "contradiction" naming the
        first event the ledger contradicts, then what the contract refuses (403/409)."""
        refusals = self.shared.refusals
        try:
            document = jsonbound.loads(body, max_bytes=len(body) + 1, what="document")
            signed = tx.from_envelope(envelope)
        except Refused as e:
            raise refusals.of(e) from None
        stated = signed.body
        if (stated.contract, stated.type) != (lots.NAME, "statement"):
            detail = f"got {stated.contract}/{stated.type}, want lots/statement"
            raise refusals.refuse("statement", detail, 422)
        digest = hashlib.sha256(body).hexdigest()
        if stated.args.get("document") != digest:
            detail = f"the statement signs {str(stated.args.get('document'))[:64]!r}, the body"
            raise refusals.refuse("document", f"{detail} hashes to {digest}", 422)
        try:
            events = epcis_statement.events_of(document)
            gtin = lots_fields.gtin14(stated.args.get("gtin"))
            lot = lots_fields.lot_number(stated.args.get("lot"))
        except ValueError as e:
            raise refusals.refuse("document", str(e), 422) from None
        if stated.args.get("events") != len(events):
            counted = stated.args.get("events")
            detail = f"the statement counts {counted!r:.20}, the body {len(events)}"
            raise refusals.refuse("events", detail, 422)
        await self.contracts.load()
        rows = await self.shared.store.read(
            lambda db: stored.bodies_at(db, self.index.indices([(gtin, lot)]))
        )
        times = {}
        for i, tx_id, canonical in rows:
            t = ledger_tx(i, tx_id, canonical)
            if t.type in ("ship", "receive"):
                times[f"{t.type}:{t.args['shipment']}"] = t.time

        def check(state: State) -> epcis_statement.Contradiction | None:
            """Who states must be an active participant in the lot's chain (else nothing
            of the ledger is compared for it); then the events, in order."""
            partner = participants.identify(state, stated.signer)
            if not lots.involved(state, gtin, lot, partner.id):
                detail = f"{stated.signer} is not in lot {gtin}/{lot}'s custody chain"
                raise refusals.refuse("involved", detail, 409)
            return epcis_statement.check_events(state, gtin, lot, partner.id, events, times)

        try:
            found = await self.contracts.read(check)
        except Refused as e:
            raise refusals.of(e) from None
        if found is not None:
            raise refusals.refuse("contradiction", str(found), 409)
        accepted = await self.contracts.submit(envelope, own_route=True)
        return accepted, digest, len(events)
