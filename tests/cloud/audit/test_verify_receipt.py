"""`pharmasync verify --receipt`: a cosigned receipt a real cloud served (its witness a real
witness app) verifies; tampered ones fail at their named step with exit status 3 and one
✗ line; a server's error answer saved as a file, and usage errors, say so."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cloud.audit.verify import main
from cloud.keys import load_or_create_signer
from cloud.settings import DEFAULT_ORIGIN
from gateway.checkpoint import Checkpoint, CosignatureSigner, sign_checkpoint
from tests.cloud.api.test_app import Cloud, chain, settings, start
from tests.cloud.api.test_receipts import receipt_when_cosigned, register
from tests.cloud.services.test_ingest import body
from tests.cloud.services.test_witnessing import witness

__all__ = ["witness"]


@pytest.fixture
async def served(
    tmp_path: Path, witness: tuple[str, CosignatureSigner]
) -> tuple[dict[str, Any], str, CosignatureSigner]:
    """(a cosigned receipt of batch 1, the log's vkey, the witness's signer)."""
    url, signer = witness
    config = settings(tmp_path / "cloud", witnesses=(f"{url}={signer.verifier().to_vkey()}",))
    server, http = await start(config)
    c = Cloud(server, http)
    try:
        await register(c)
        for header, wires in chain(3, 2):
            assert (await c.upload(body(header, wires)))[0] == 201
        doc = await receipt_when_cosigned(c, 1)
        _, vkey = await c.get("/v1/log/vkey")
    finally:
        await http.close()
        await server.close()
    return doc, vkey.decode().strip(), signer


def run(
    tmp_path: Path, doc: object, *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    path = tmp_path / "receipt.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    status = main(["--receipt", str(path), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_accepts_a_served_cosigned_receipt(
    tmp_path: Path,
    served: tuple[dict[str, Any], str, CosignatureSigner],
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc, vkey, signer = served
    (tmp_path / "ledger.vkey").write_text(vkey + "\n")
    (tmp_path / "witness.vkey").write_text(signer.verifier().to_vkey() + "\n")
    keys = [
        "--log-vkey",
        f"@{tmp_path / 'ledger.vkey'}",
        "--witness",
        f"@{tmp_path / 'witness.vkey'}",
    ]
    status, out, err = run(tmp_path, doc, *keys, capsys=capsys)
    assert status == 0, out + err
    assert "✓ cosignatures" in out and "✓ consistency" in out and signer.name in out
    status, out, _ = run(tmp_path, doc, *keys, "--json", capsys=capsys)
    report = json.loads(out)
    assert status == 0 and report["ok"] and report["seq"] == 1
    assert report["gateway"] == doc["receipt"]["gateway"] and report["witnesses"] == [signer.name]


def test_verify_refuses_tampered_receipts_each_at_its_step(
    tmp_path: Path,
    served: tuple[dict[str, Any], str, CosignatureSigner],
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc, vkey, signer = served
    keys = ["--log-vkey", vkey, "--witness", signer.verifier().to_vkey()]

    def refused(changed: object, *more: str) -> tuple[str, str]:
        status, out, err = run(tmp_path, changed, *keys, *more, capsys=capsys)
        assert status == 3, out + err
        failed = [line for line in out.splitlines() if line.startswith("✗")]
        assert len(failed) == 1 and "verification FAILED at step" in err, out + err
        return failed[0], err

    wrong_proof = copy.deepcopy(doc)
    proof = wrong_proof["cosigned"]["inclusion"]
    proof[0] = ("0" if proof[0][0] != "0" else "1") + proof[0][1:]
    assert "✗ inclusion" in refused(wrong_proof)[0]

    # Too few: one witness cosigned, two wanted.
    assert "✗ cosignatures" in refused(doc, "--min-cosignatures", "2")[0]

    # An unknown witness: the cosignature is not of the key the auditor trusts.
    stranger = CosignatureSigner.generate("stranger.example/witness").verifier().to_vkey()
    line, _ = refused(doc, "--witness", stranger, "--min-cosignatures", "2")
    assert "✗ cosignatures" in line and "got 1 of the given witnesses, want 2" in line
    status, out, _ = run(tmp_path, doc, "--log-vkey", vkey, "--witness", stranger, capsys=capsys)
    assert status == 3 and "got 0 of the given witnesses, want 1" in out

    # A receipt checkpoint signed by the log's own key over another history: the cosigned
    # checkpoint is not consistent with it (a split view).
    log_key = load_or_create_signer(tmp_path / "cloud" / "log.skey", DEFAULT_ORIGIN)
    split = copy.deepcopy(doc)
    size = split["receipt"]["log_index"] + 1
    split["receipt"]["checkpoint"] = sign_checkpoint(
        Checkpoint(DEFAULT_ORIGIN, size, bytes(32)), log_key
    )
    assert "✗ consistency" in refused(split)[0]

    assert "✗ shape" in refused("not json")[0]


def test_verify_receipt_names_a_servers_answer_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "reason": "not cosigned",
        "detail": "no checkpoint of size 4 or more has 1 witness cosignatures yet; ask again later",
    }
    witness = CosignatureSigner.generate("w.example/witness").verifier().to_vkey()
    log_vkey = load_or_create_signer(tmp_path / "log.skey", DEFAULT_ORIGIN).verifier().to_vkey()
    status, _, err = run(
        tmp_path, problem, "--log-vkey", log_vkey, "--witness", witness, capsys=capsys
    )
    assert status == 1 and "server's answer" in err and "ask again later" in err
    status, _, err = run(tmp_path, problem, "--log-vkey", log_vkey, capsys=capsys)
    assert status == 2 and "at least one --witness" in err
    status, _, err = run(
        tmp_path, problem, "--witness", "nonsense", "--log-vkey", log_vkey, capsys=capsys
    )
    assert status == 2 and err.startswith("error:")
