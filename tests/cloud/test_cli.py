"""The `pharmasync` command as a user runs it: exit codes and what it prints."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from cloud.cli import main
from tests.conftest import GOLDEN

READINGS = json.loads((GOLDEN / "reading-v1.json").read_text())
BATCHES = json.loads((GOLDEN / "batch-v1.json").read_text())


def test_inspect_prints_a_valid_reading(capsys: pytest.CaptureFixture[str]) -> None:
    case = READINGS["valid"][1]  # the -80 C freezer box, battery low
    assert main(["device", "inspect", case["wire"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["device_key"] == case["key"]
    assert shown["temperature_c"] == -80.0
    assert shown["flags"] == ["battery_low"]
    assert shown["signature_valid"] is True


def test_inspect_names_the_bad_field_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    bad = next(c for c in READINGS["invalid"] if c["field"] == "version")
    assert main(["device", "inspect", bad["wire"]]) == 1
    assert "version: got 2, want 1" in capsys.readouterr().err


def test_inspect_fails_on_a_forged_reading(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "inspect", READINGS["forged"][0]["wire"], "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["signature_valid"] is False


def test_inspect_rejects_non_hex_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["device", "inspect", "zz"])
    assert exit_.value.code == 2
    assert "not hex" in capsys.readouterr().err


def test_inspect_batch_reads_hex_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    header = BATCHES["headers"][1]
    monkeypatch.setattr(sys, "stdin", io.StringIO(header["wire"] + "\n"))
    assert main(["gateway", "inspect-batch", "-", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["header_hash"] == header["header_hash"]
    assert shown["prev_hash"] == BATCHES["headers"][0]["header_hash"]
    assert shown["signature_valid"] is True


def test_keygen_writes_a_private_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "box.key"
    assert main(["device", "keygen", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret = bytes.fromhex(out.read_text())
    from device import schnorr

    assert schnorr.pubkey(secret).hex() in capsys.readouterr().out
    assert main(["device", "keygen", str(out)]) == 2  # never overwrites a key
    assert bytes.fromhex(out.read_text()) == secret


@pytest.mark.parametrize(
    "args, owners_file, message",
    [
        (["--owner", "abcd"], None, "owner key: got 2 bytes, want 32"),
        (["--witness", "no-url-here"], None, "witness: got 'no-url-here', want URL=VKEY"),
        ([], "# staff\nnot-hex\n", "owners:2: not a hex key: 'not-hex'"),
        (["--database", "mysql://x"], None, "want a postgresql:// URL"),
    ],
)
def test_cloud_serve_refuses_bad_settings_before_starting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    owners_file: str | None,
    message: str,
) -> None:
    if owners_file is not None:
        (tmp_path / "owners").write_text(owners_file)
    assert main(["cloud", "serve", "--data-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_cloud_register_explains_a_bad_owner_key_or_an_unreachable_cloud(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    key = tmp_path / "owner.key"
    base = ["cloud", "register", "--owner-key", str(key)]
    box = ["box", "11" * 32, "--site", "w1"]
    assert main([*base, *box]) == 2  # no such file
    assert "error: --owner-key:" in capsys.readouterr().err
    key.write_text("not a key\n")
    assert main([*base, *box]) == 2
    assert "want 64 hex characters" in capsys.readouterr().err
    key.write_text("00" * 32 + "\n")  # 64 hex digits, but no valid secret key
    assert main([*base, *box]) == 2
    assert "secret key value" in capsys.readouterr().err
    key.write_text("01" * 32 + "\n")
    cloud = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main([*base[:2], "--cloud", cloud, *base[2:], *box]) == 1
    assert f"error: {cloud}: ClientConnectorError" in capsys.readouterr().err
