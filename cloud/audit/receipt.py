"""`pharmasync verify --receipt`: the auditor's offline check of a cosigned receipt.

A cosigned receipt (GET /v1/batches/{gateway}/{seq}/receipt, or what a gateway keeps) shows
that a batch is in the log under a checkpoint that witnesses cosigned. The checks are
gateway/cosigned_receipt.py's, step by step; this module reads the file's JSON within
jsonbound's limits, reads the keys, and words the outcome one line per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from gateway import jsonbound
from gateway.checkpoint import CosignatureVerifier
from gateway.cosigned_receipt import STEPS, Checked, ReceiptError, check, parse
from gateway.note import Verifier

MAX_RECEIPT_BYTES: Final = 1 << 20  # a receipt is a few KiB: two notes and two short proofs


def verify_receipt(
    data: bytes, *, log_vkey: str, witnesses: Sequence[str], min_cosignatures: int
) -> Checked:
    """Check the cosigned receipt in JSON `data` against the pinned log key `log_vkey` and
    the witness keys `witnesses` (at least `min_cosignatures` of them must have cosigned).
    Raises ReceiptError(step, detail) at the first failing step ("shape" for JSON that is
    no receipt); KeyFormatError (a ValueError) for a malformed key string."""
    log_key = Verifier.parse(log_vkey)
    keys = [CosignatureVerifier.parse(w) for w in witnesses]
    try:
        doc: Any = jsonbound.loads(data, max_bytes=MAX_RECEIPT_BYTES, what="receipt")
    except jsonbound.JsonError as e:
        raise ReceiptError("shape", str(e)) from None
    return check(parse(doc), log_key=log_key, witnesses=keys, min_cosignatures=min_cosignatures)


def step_line(mark: str, step: str, detail: str = "") -> str:
    """One line of the report: ✓ or ✗, the step's name, what it found."""
    return f"{mark} {step:<20} {detail}".rstrip()


def describe(checked: Checked) -> list[str]:
    """The lines of a verified receipt: every step passed, then what it proves."""
    lines = [step_line("✓", step) for step in STEPS]
    lines += [
        "",
        f"batch {checked.seq} of gateway {checked.gateway.hex()} is log entry "
        f"{checked.log_index}, in the log of {checked.size} entries that "
        f"{checked.cosignatures} witness(es) cosigned: {', '.join(checked.witnesses)}",
    ]
    return lines


def failure_lines(error: ReceiptError) -> list[str]:
    """The lines of a failed check: the steps that passed, then the failing one."""
    passed = STEPS[: STEPS.index(error.step)] if error.step in STEPS else ()
    return [step_line("✓", step) for step in passed] + [step_line("✗", error.step, error.detail)]


def failure_json(error: ReceiptError) -> dict[str, Any]:
    """The JSON report of a failed check."""
    passed = STEPS[: STEPS.index(error.step)] if error.step in STEPS else ()
    return {"ok": False, "step": error.step, "detail": error.detail, "passed": list(passed)}


def report_json(checked: Checked) -> dict[str, Any]:
    """The JSON report of a verified receipt."""
    return {
        "ok": True,
        "gateway": checked.gateway.hex(),
        "seq": checked.seq,
        "log_index": checked.log_index,
        "size": checked.size,
        "cosignatures": checked.cosignatures,
        "witnesses": list(checked.witnesses),
    }
