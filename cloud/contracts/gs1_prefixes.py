"""A manufacturer's GS1 company prefixes (GCP), which the EPCIS export and query need to write
and read EPC URNs (cloud/contracts/epc_urn.py: where a GCP ends is not in a GTIN). A `lots`
transaction of the manufacturer's, `gs1-prefix`, declares them; they are public (printed in
every barcode the company makes). Pure: no storage, no clock.

    GS1_PREFIX  public  (prefix)   {"manufacturer" (id), "since" (ms)}

The ledger cannot check a GCP licence with GS1 (the regulator admits the manufacturer; the
GCP is its own statement, signed). It keeps GCPs prefix-free, as GS1 allocates them: a
prefix that starts with a registered one, or is another manufacturer's, is refused; one
already the signer's is taken again without change. (A shorter prefix that a registered
longer one starts with is not found without a scan of every GCP: a GTIN's GCP is the
shortest registered prefix its digits 2 onwards start with, the first being the indicator.)
"""

from __future__ import annotations

from typing import Final

from cloud.contracts import args, lots
from cloud.contracts.engine import Conflict, Context, Forbidden, Invalid, RecordType, View
from cloud.contracts.epc_urn import PREFIX_MAX, PREFIX_MIN

GS1_PREFIX: Final = RecordType(lots.NAME, 19, "gs1 prefix", private=False)
MAX_PREFIXES: Final = 20  # one transaction's; a company holds few GCPs


def prefix_of(view: View, key: str) -> str | None:
    """The registered GCP of a GS1 key (a GTIN-14 or an SSCC: its digits after the first),
    None if none is registered. At most PREFIX_MAX - PREFIX_MIN + 1 lookups."""
    for length in range(PREFIX_MIN, PREFIX_MAX + 1):
        if view.get(GS1_PREFIX, key[1 : 1 + length]) is not None:
            return key[1 : 1 + length]
    return None


def split_refused(view: View, prefix: str, key: str) -> str | None:
    """Why a URN splitting GS1 key `key` at company prefix `prefix` is refused, or None if
    `prefix` is the key's registered GCP."""
    registered = prefix_of(view, key)
    if registered == prefix:
        return None
    if registered is None:
        return (
            f"company prefix {prefix} is not registered here: its manufacturer has not declared "
            "its GS1 company prefix (lots gs1-prefix); use the GS1 Digital Link URI"
        )
    return (
        f"the split at {prefix} ({len(prefix)} digits) is not the registered company prefix "
        f"{registered} ({len(registered)} digits) of {key}"
    )


def _prefix(value: object) -> str:
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValueError(f"got {str(value)[:20]!r}, want {PREFIX_MIN} to {PREFIX_MAX} digits")
    if not PREFIX_MIN <= len(value) <= PREFIX_MAX:
        raise ValueError(f"got {len(value)} digits, want {PREFIX_MIN} to {PREFIX_MAX}")
    return value


def declare(ctx: Context) -> None:
    """Declare the signer's GS1 company prefixes: args prefixes, 1 to MAX_PREFIXES strings of
    6 to 12 digits, distinct (Invalid "args.prefixes" / "args.prefixes[i]"). A manufacturer
    only (Forbidden "role"; its column is manufacturer identity). Conflict "prefix" naming
    the first that starts with a registered GCP, is another manufacturer's, or overlaps
    another one given."""
    args.exact(ctx.args, ("prefixes",))
    if ctx.me.role != "manufacturer":
        raise Forbidden("role", f"gs1-prefix: a manufacturer's, not a {ctx.me.role}'s")
    given = ctx.args["prefixes"]
    if type(given) is not list or not 1 <= len(given) <= MAX_PREFIXES:
        raise Invalid("args.prefixes", f"want a list of 1 to {MAX_PREFIXES} company prefixes")
    prefixes = []
    for i, value in enumerate(given):
        try:
            prefixes.append(_prefix(value))
        except ValueError as e:
            raise Invalid(f"args.prefixes[{i}]", str(e)) from None
    if len(set(prefixes)) != len(prefixes):
        i = next(i for i, p in enumerate(prefixes) if p in prefixes[:i])
        raise Invalid(f"args.prefixes[{i}]", f"prefix {prefixes[i]} repeats")
    for i, prefix in enumerate(prefixes):
        for other in prefixes[:i]:
            if prefix.startswith(other) or other.startswith(prefix):
                raise Conflict("prefix", f"{prefix} and {other} overlap: a GCP is prefix-free")
        for length in range(PREFIX_MIN, len(prefix)):
            held = ctx.get(GS1_PREFIX, prefix[:length])
            if held is not None:
                raise Conflict("prefix", f"{prefix} starts with the registered {prefix[:length]}")
        held = ctx.get(GS1_PREFIX, prefix)
        if held is not None and held["manufacturer"] != ctx.me.id:
            raise Conflict("prefix", f"{prefix} is another manufacturer's")
        if held is None:
            ctx.put(GS1_PREFIX, [prefix], {"manufacturer": ctx.me.id, "since": ctx.time})


RULES: Final = {"gs1-prefix": declare}
