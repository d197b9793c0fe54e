"""Compliance certificates (docs/contracts.md §4, issue 11 §6): `certify` and `revoke`.

The regulator certifies participants (kind `gmp`, `cold-storage`); a lot's manufacturer (its
QA) issues a `release` certificate to a lot. A certificate is bound to its subject (a
participant's id, which a key rotation keeps, or a lot): there is no transfer. It is valid
from `valid_from` to before `valid_until` (ms) unless revoked, and only its issuer revokes it.
Its document lives off the log, named by its CIDv1 (cloud/contracts/cid.py).

Records (lots.py declares them, both public: validity facts, the document only as a CID):

    CERTIFICATE (id)     {"id", "kind", "subject": participant id | "<gtin>/<lot>",
                          "issuer" (id), "valid_from", "valid_until", "document" (CID),
                          "since", "revoked": null | {"reason", "since"}}
    LICENCE (id)         {"certificates": {certificate id: [valid_from, valid_until]}}: the
                          participant's cold-storage licences not revoked, what `ship` reads
"""

from __future__ import annotations

from typing import Final

from cloud.contracts import args, cid, lots, lots_fields, participants
from cloud.contracts.engine import Conflict, Context, Forbidden, Invalid

GMP: Final = "gmp"
COLD_STORAGE: Final = "cold-storage"
RELEASE: Final = "release"
KINDS: Final = (GMP, COLD_STORAGE, RELEASE)


def _subject(ctx: Context, kind: str) -> tuple[str, str]:
    """Return (subject, DID to tell) for `kind`, checking who may issue it. Forbidden "role";
    Conflict "subject" (not a current participant) or "lot"."""
    me = ctx.me
    if kind == RELEASE:
        args.exact(ctx.args, _COMMON, ("gtin", "lot"))
        gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
        lot = args.checked(ctx.args, "lot", lots_fields.lot_number)
        record = ctx.get(lots.LOT, gtin, lot)
        if record is None:
            raise Conflict("lot", f"lot {gtin}/{lot} was never commissioned")
        if record["manufacturer"] != me.id:
            raise Forbidden("role", "release: the lot's manufacturer's (QA)")
        return f"{gtin}/{lot}", me.did
    args.exact(ctx.args, _COMMON, ("subject",))
    if me.role != "regulator":
        raise Forbidden("role", f"{kind}: the regulator's, not a {me.role}'s")
    did, xonly = args.did(ctx.args, "subject")
    subject = participants.current(ctx, xonly)
    if subject is None:
        raise Conflict("subject", f"{did} is not a current participant's key")
    return str(subject["id"]), str(subject["did"])


_COMMON: Final = ("certificate", "kind", "valid_from", "valid_until", "document")


def certify(ctx: Context) -> None:
    """Issue a certificate: args certificate (a new id), kind (gmp | cold-storage | release),
    subject (a did; gmp and cold-storage, by the regulator) or gtin and lot (release, by the
    lot's manufacturer), valid_from, valid_until (ms, until after from), document (CID).
    Invalid for the fields; Forbidden "role"; Conflict "certificate exists", "subject",
    "lot". A cold-storage certificate enters its subject's LICENCE record."""
    kind = args.choice(ctx.args, "kind", KINDS)
    subject, tell = _subject(ctx, kind)
    certificate = args.ident(ctx.args, "certificate")
    valid_from = args.integer(ctx.args, "valid_from", minimum=0)
    valid_until = args.integer(ctx.args, "valid_until", minimum=0)
    if valid_until <= valid_from:
        raise Invalid("args.valid_until", f"got {valid_until}, want after {valid_from}")
    document = args.checked(ctx.args, "document", _cid)
    if ctx.get(lots.CERTIFICATE, certificate) is not None:
        raise Conflict("certificate exists", f"certificate {certificate} already exists")
    ctx.put(
        lots.CERTIFICATE,
        [certificate],
        {
            "id": certificate,
            "kind": kind,
            "subject": subject,
            "issuer": ctx.me.id,
            "valid_from": valid_from,
            "valid_until": valid_until,
            "document": document,
            "since": ctx.time,
            "revoked": None,
        },
    )
    if kind == COLD_STORAGE:
        licence = ctx.get(lots.LICENCE, subject) or {"certificates": {}}
        licence["certificates"][certificate] = [valid_from, valid_until]
        ctx.put(lots.LICENCE, [subject], licence)
    event = {"type": "certified", "certificate": certificate, "kind": kind, "subject": subject}
    ctx.notify(tell, event)


def _cid(value: object) -> str:
    cid.parse(value)  # CidError is a ValueError: args.checked names args.document
    assert isinstance(value, str)
    return value


def revoke(ctx: Context) -> None:
    """Revoke a certificate: args certificate, reason. Conflict "certificate" (unknown),
    "issuer" (not the signer's: only its issuer revokes it), "revoked" (already)."""
    args.exact(ctx.args, ("certificate", "reason"))
    certificate = args.ident(ctx.args, "certificate")
    reason = args.text(ctx.args, "reason")
    record = ctx.get(lots.CERTIFICATE, certificate)
    if record is None:
        raise Conflict("certificate", f"no certificate {certificate}")
    if record["issuer"] != ctx.me.id:
        raise Conflict("issuer", f"certificate {certificate} was issued by another participant")
    if record["revoked"] is not None:
        raise Conflict("revoked", f"certificate {certificate} is already revoked")
    record["revoked"] = {"reason": reason, "since": ctx.time}
    ctx.put(lots.CERTIFICATE, [certificate], record)
    if record["kind"] == COLD_STORAGE:
        licence = ctx.get(lots.LICENCE, record["subject"])
        assert licence is not None, "a cold-storage certificate not revoked is in its LICENCE"
        del licence["certificates"][certificate]
        if licence["certificates"]:
            ctx.put(lots.LICENCE, [record["subject"]], licence)
        else:
            ctx.delete(lots.LICENCE, record["subject"])


def valid(record: dict[str, object], time_ms: int) -> bool:
    """Whether a CERTIFICATE record is valid at `time_ms`: in its validity, not revoked."""
    start, until = record["valid_from"], record["valid_until"]
    assert isinstance(start, int) and isinstance(until, int)
    return record["revoked"] is None and start <= time_ms < until


RULES: Final = {"certify": certify, "revoke": revoke}
