"""Reads of the contracts' private records, filtered by the read matrix (docs/contracts.md
§5, "Reads"): a lot's columns, the participants, certificates. This service only finds who
reads (a bearer token, or the public) and gathers the facts (cloud/contracts/facts.py);
what the reader sees is the read policy's (cloud/contracts/policy.py), never decided here or
in the routes.

It reads the contract service's State after catching up on the log (ContractService.load),
synchronously, so no transaction is merged half-way through a read. What no key reaches (a
lot's shipments and boxes, a subject's certificates, the participants) it finds in a
FactIndex (cloud/contracts/facts_index.py) that follows the service's applied transactions,
and whether a reader is in a lot's custody chain in the recall trace's index
(cloud/contracts/lots_trace.py, the TraceService's), so a read looks up its own records,
never all of them, nor each lot of a large family. Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

from typing import Any, Final

from cloud.contracts import access, auth, facts, lots_fields, participants, policy
from cloud.contracts.didkey import DidKeyError, to_xonly
from cloud.contracts.engine import Participant
from cloud.contracts.facts_index import FactIndex
from cloud.contracts.lots_trace import LotIndex
from cloud.services.contracts import ContractService
from gateway.refusal import Refused

PUBLIC: Final = "public"
MAX_SUBJECT: Final = 100  # a did:key is 57 characters, "<gtin>/<lot>" at most 35
# The columns a lot's view has (policy.lot_view): every one but entities' identity.
LOT_COLUMNS: Final = tuple(c for c in access.COLUMNS if c != access.ENTITIES_IDENTITY)


class ReadService:
    """Filtered reads over the contract service's State (module docstring)."""

    def __init__(self, contracts: ContractService, lineage: LotIndex) -> None:
        """Build the index empty: register before contracts.load(), which feeds it every
        transaction replayed. `lineage`: the trace index following the same service."""
        self.contracts = contracts
        self.lineage = lineage
        self.index = FactIndex()
        contracts.listeners.append(lambda _, applied: self.index.apply(applied))

    async def _reader(self, token: auth.Token | None) -> Participant | None:
        """Catch up on the log, then say who reads: None for the public (no token, or a
        token of a role the matrix has no row for: a replayer). Raises LedgerError 403
        "participant" for a token whose did is no longer a regulator or active participant."""
        await self.contracts.load()
        if token is None or token.role not in access.READ:
            return None
        try:
            return participants.identify(self.contracts.state, token.did)
        except Refused as e:
            raise self.contracts.shared.refusals.of(e) from None

    async def lot(self, gtin: str, lot: str, token: auth.Token | None) -> dict[str, Any]:
        """A lot's columns as the reader may see them: {"columns", "withheld"} and, where
        the policy shows it, "custody" (policy.lot_view); {} for a lot never commissioned.
        Caller checks gtin and lot."""
        who = await self._reader(token)
        state = self.contracts.state
        found = facts.lot_facts(state, self.index, gtin, lot)
        if found is None:
            return {}
        role, me = (PUBLIC, None) if who is None else (who.role, who.id)
        involved = me is not None and self.lineage.involved(gtin, lot, me)
        columns, withheld, custody = policy.lot_view(role, involved, found, me)
        answer: dict[str, Any] = {"columns": columns, "withheld": withheld}
        if custody is not None:
            answer["custody"] = custody
        return answer

    async def lot_column(
        self, gtin: str, lot: str, column: str, token: auth.Token | None
    ) -> dict[str, Any]:
        """One column of a lot (policy.lot_view), asked for by name: {"gtin", "lot",
        "column", "value"}. Raises LedgerError 400 "gtin"/"lot"/"column" (malformed, or no
        column of a lot), 404 "lot" (never commissioned), 403 "access" naming the cell that
        withholds it, for the public as for a signed-in reader."""
        refusals = self.contracts.shared.refusals
        try:
            gtin = lots_fields.gtin14(gtin)
        except ValueError as e:
            raise refusals.refuse("gtin", str(e), 400) from None
        try:
            lot = lots_fields.lot_number(lot)
        except ValueError as e:
            raise refusals.refuse("lot", str(e), 400) from None
        if column not in LOT_COLUMNS:
            want = ", ".join(LOT_COLUMNS)
            raise refusals.refuse("column", f"got {column[:40]!r}, want one of {want}", 400)
        answer = await self.lot(gtin, lot, token)
        if not answer:
            raise refusals.refuse("lot", f"lot {gtin}/{lot} was never commissioned", 404)
        if column in answer["withheld"]:
            raise refusals.refuse("access", answer["withheld"][column], 403)
        value = answer["columns"][column]
        return {"gtin": gtin, "lot": lot, "column": column, "value": value}

    async def participants(self, token: auth.Token | None) -> dict[str, Any]:
        """The participants the reader may list, with counts where its cell is global only
        (policy.directory)."""
        who = await self._reader(token)
        records = facts.all_participants(self.contracts.state, self.index)
        role, me = (PUBLIC, None) if who is None else (who.role, who.id)
        return policy.directory(role, me, records)

    async def participant(self, did: str, token: auth.Token | None) -> dict[str, Any]:
        """One participant (named by any DID it had) as the reader may see it: {"did" (as
        asked: its current one is in its identity column, for a reader of that column),
        "columns", "withheld"}. Raises LedgerError 400 "did" (not a did:key),
        404 "participant" (no one's), 403 "access" naming the cells when every column is
        withheld."""
        refusals = self.contracts.shared.refusals
        try:
            xonly = to_xonly(did)
        except DidKeyError as e:
            raise refusals.refuse("did", e.detail, 400) from None
        who = await self._reader(token)
        record = facts.participant_of(self.contracts.state, xonly)
        if record is None:
            raise refusals.refuse("participant", f"{did} is no participant's key", 404)
        role, me = (PUBLIC, None) if who is None else (who.role, who.id)
        columns, withheld = policy.participant_view(role, me, record)
        if not columns:
            raise refusals.refuse("access", "; ".join(withheld.values()), 403)
        return {"did": did, "columns": columns, "withheld": withheld}

    async def certificates(self, subject: str, token: auth.Token | None) -> dict[str, Any]:
        """The certificates of `subject` (a participant's did:key, any it had, or
        "<gtin>/<lot>") as the reader's compliance cell shows them (policy.certificate_view);
        `withheld` names the cell when any was shown only in part. Raises LedgerError 400
        "subject" for neither form."""
        key = self._subject(subject)
        who = await self._reader(token)
        state = self.contracts.state
        if isinstance(key, bytes):
            record = facts.participant_of(state, key)
            named = None if record is None else str(record["id"])
        else:
            named = key
        found = [] if named is None else facts.certificates_of(state, self.index, named)
        role, me = (PUBLIC, None) if who is None else (who.role, who.id)
        shown = [policy.certificate_view(role, me, c) for c in found]
        withheld = {}
        if any(view != full for view, full in zip(shown, found, strict=True)):
            withheld[access.COMPLIANCE] = access.cell(role, access.COMPLIANCE, "read")
        visible = [view for view in shown if view is not None]
        return {"subject": subject, "certificates": visible, "withheld": withheld}

    def _subject(self, subject: str) -> bytes | str:
        """A did:key's x-only key, or a lot's "<gtin>/<lot>" with both parts checked.
        Raises LedgerError 400 "subject"."""
        refusals = self.contracts.shared.refusals
        if len(subject) > MAX_SUBJECT:
            raise refusals.refuse("subject", f"over {MAX_SUBJECT} characters", 400)
        if subject.startswith("did:"):
            try:
                return to_xonly(subject)
            except DidKeyError as e:
                raise refusals.refuse("subject", e.detail, 400) from None
        gtin, slash, lot = subject.partition("/")
        try:
            if not slash:
                raise ValueError('want a did:key or "<gtin>/<lot>"')
            return f"{lots_fields.gtin14(gtin)}/{lots_fields.lot_number(lot)}"
        except ValueError as e:
            raise refusals.refuse("subject", str(e), 400) from None
