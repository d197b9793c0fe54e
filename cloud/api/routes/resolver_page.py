"""The public check as a page a phone shows after scanning a pack's QR code: the verdict in
large type on its colour (green dispensable, red do not dispense, dark red unknown lot), then
the facts, the "as of" time and how to check the proof offline. Plain HTML, no script."""

from __future__ import annotations

import shlex
from html import escape
from typing import Any, Final

from cloud.contracts import public_facts, public_pack
from cloud.contracts.digital_link import DigitalLink

COLOURS: Final = {  # background of the verdict: WCAG AA contrast with white text
    public_facts.DISPENSABLE: "#0a6b2d",
    public_facts.DO_NOT_DISPENSE: "#b00020",
    public_facts.UNKNOWN: "#5c0011",
    public_pack.SUSPECT: "#5c0011",
    None: "#3d4451",  # no lot scanned
}
HEADLINES: Final = {
    public_facts.DISPENSABLE: "Authentic — OK to dispense",
    public_facts.DO_NOT_DISPENSE: "Do not dispense",
    public_facts.UNKNOWN: "Unknown lot — suspect pack",
    public_pack.SUSPECT: "Suspect pack — do not dispense, report it",
    None: "Scan the pack's full code",
}

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{headline} · PharmaSync check</title>
<style>
  body {{ font: 20px/1.5 system-ui, sans-serif; margin: 0; color: #1b1f23; }}
  main {{ max-width: 36rem; margin: 0 auto; padding: 1rem; }}
  #verdict {{ background: {colour}; color: #fff; padding: 1.2rem 1rem; border-radius: .6rem; }}
  #verdict h1 {{ font-size: 1.8rem; line-height: 1.2; margin: 0 0 .4rem; }}
  #verdict ul {{ margin: .2rem 0 0; padding-left: 1.2rem; }}
  dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .3rem .9rem; }}
  dt {{ font-weight: 600; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
  code, pre {{ font: .8rem ui-monospace, monospace; overflow-wrap: anywhere; }}
  pre {{ background: #f4f5f7; padding: .6rem; white-space: pre-wrap; }}
  .small {{ font-size: .85rem; color: #4a5058; }}
</style>
</head>
<body>
<main>
<section id="verdict" data-verdict="{verdict}">
<h1>{headline}</h1>
{reasons}
</section>
<dl>
{facts}
</dl>
<p class="small">{as_of}</p>
<h2>Check it yourself</h2>
<p class="small">This answer comes with a proof signed by the ledger's key. Save it and check
it offline, without trusting this server:</p>
<pre>curl -s {vkey_url} -o ledger.vkey
curl -s -H 'Accept: {proof_type}' {link} -o check.bin
pharmasync verify --public check.bin --link {link} --log-vkey @ledger.vkey</pre>
</main>
</body>
</html>
"""


def render(
    scanned: DigitalLink,
    facts: dict[str, Any] | None,
    as_of: str | None,
    base: str,
    proof_type: str,
) -> str:
    """The page of a public check: `facts` (public_facts.facts of a lot, public_pack.facts
    of a pack; None without a lot or serial), `as_of` the checkpoint's time as text (None:
    no proof yet), the resolver's `base`. The commands to paste are built from the link as
    parsed (written canonically: what was not understood is dropped) and shell-quoted, so
    a crafted link cannot make them run anything else."""
    verdict = None if facts is None else facts["verdict"]
    notes = [] if facts is None else list(facts["reasons"])
    reasons = "".join(f"<li>{escape(r)}</li>" for r in notes)
    rows = [("GTIN", scanned.gtin)]
    rows += [("Lot", scanned.lot)] if scanned.lot is not None else []
    rows += [("Serial", scanned.serial)] if scanned.serial is not None else []
    rows += _fact_rows(facts)
    return PAGE.format(
        headline=escape(HEADLINES[verdict]),
        colour=COLOURS[verdict],
        verdict=escape(verdict or "none"),
        reasons=f"<ul>{reasons}</ul>" if reasons else "",
        facts="\n".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows),
        as_of=escape(f"As of {as_of}, as committed by the ledger." if as_of else "No proof yet."),
        vkey_url=escape(shlex.quote(f"{base}/v1/log/vkey")),
        link=escape(shlex.quote(scanned.uri(base))),
        proof_type=escape(proof_type),
    )


def _fact_rows(facts: dict[str, Any] | None) -> list[tuple[str, str]]:
    if facts is None or not facts["authentic"]:
        serial = None if facts is None else facts.get("serial")
        return _serial_row(serial)
    quality = facts["quality"]
    recall = facts["recall"]
    coldchain = facts["coldchain"]
    rows = [
        ("Registered", "yes, by an admitted manufacturer"),
        ("Expiry", facts["expiry"] + (" (expired)" if facts["expired"] else "")),
    ]
    scanned = facts.get("scanned_expiry")
    if scanned is not None:
        agrees = "agrees" if scanned["agrees"] else "DIFFERS from the registered expiry"
        rows.append(("Pack's expiry", f"{scanned['date']} ({scanned['yymmdd']}): {agrees}"))
    status = "none" if quality is None else f"{quality['status']} ({quality['reason']})"
    rows.append(("Quality", status))
    rows.append(
        ("Recall", "none" if recall is None else f"class {recall['class']}: {recall['reason']}")
    )
    within = "within its profile" if coldchain["within_profile"] else coldchain["verdict"]
    rows.append(("Cold chain", within))
    return rows + _serial_row(facts.get("serial"))


def _serial_row(serial: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The pack's rows (public_pack.facts): registered, in the supply chain, which lot."""
    if serial is None:
        return []
    if not serial["registered"]:
        return [("Pack", "NOT registered by the manufacturer — suspect")]
    rows = [
        ("Pack", "registered by the manufacturer"),
        (
            "Status",
            "in the supply chain (active)"
            if serial["in_supply_chain"]
            else f"decommissioned ({serial['status']})",
        ),
        ("Registered lot", serial["registered_lot"]),
    ]
    if serial["moved"]:
        rows.append(("Now in lot", f"{serial['lot']} (moved by a split; its facts above)"))
    return rows
