"""What the `pharmasync` commands share (device/cliutil.py): argument types refuse bad
input with got/want, examples read back as written, keygen never overwrites a key."""

from __future__ import annotations

import argparse
import io
import json
import stat
from pathlib import Path

import pytest

from device import cliutil, reading, schnorr

SECRET = bytes.fromhex("22" * 32)


def test_examples_read_back_as_written() -> None:
    parser = argparse.ArgumentParser(
        epilog=cliutil.examples("pharmasync device keygen a.key", "pharmasync cloud keygen b")
    )
    assert cliutil.examples_of(parser) == [
        "pharmasync device keygen a.key",
        "pharmasync cloud keygen b",
    ]
    assert cliutil.examples_of(argparse.ArgumentParser(epilog="no examples")) == []


def test_positive_int_refuses_zero() -> None:
    assert cliutil.positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="got 0, want a whole number >= 1"):
        cliutil.positive_int("0")


def test_hex_bytes_reads_text_a_file_or_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k.pub").write_text("ab01\n")
    assert cliutil.hex_bytes("ab01") == b"\xab\x01"
    assert cliutil.hex_bytes(f"@{tmp_path / 'k.pub'}") == b"\xab\x01"
    monkeypatch.setattr("sys.stdin", io.StringIO(" ab01 \n"))
    assert cliutil.hex_bytes("-") == b"\xab\x01"
    with pytest.raises(argparse.ArgumentTypeError, match="not hex"):
        cliutil.hex_bytes("xyz")
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        cliutil.hex_bytes(f"@{tmp_path / 'missing'}")


def test_key_hex_wants_32_bytes() -> None:
    key = schnorr.pubkey(SECRET)
    assert cliutil.key_hex(key.hex().upper()) == key.hex()
    with pytest.raises(argparse.ArgumentTypeError, match="got 31 bytes, want a 32-byte"):
        cliutil.key_hex(key[:31].hex())


def test_describe_spells_out_a_reading() -> None:
    wire = reading.sign(SECRET, 7, 1_700_000_000, -1850, 4321, reading.FLAG_BACKLOG, bytes(32))
    described = cliutil.describe(reading.decode(wire))
    assert described["temperature_c"] == -18.5 and described["humidity_pct"] == 43.21
    assert described["flags"] == ["backlog"] and described["seq"] == 7


def test_keygen_writes_a_secret_key_and_never_overwrites_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "box.key"
    assert cliutil.keygen(argparse.Namespace(out=out)) == 0
    secret = bytes.fromhex(out.read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.with_suffix(".pub").read_text() == schnorr.pubkey(secret).hex() + "\n"
    assert cliutil.keygen(argparse.Namespace(out=out)) == 2
    assert "exists; refusing to overwrite a key" in capsys.readouterr().err
    assert bytes.fromhex(out.read_text()) == secret
    assert cliutil.keygen(argparse.Namespace(out=tmp_path / "x.pub")) == 2


def test_print_record_gives_a_nested_object_one_line_per_member(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cliutil.print_record({"lot": "L1", "quality": {"status": "released", "since": 5}}, False)
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines == ["lot: L1", "quality.status: released", "quality.since: 5"]
    cliutil.print_record({"quality": {"status": "released"}}, True)
    assert json.loads(capsys.readouterr().out) == {"quality": {"status": "released"}}
