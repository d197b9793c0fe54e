"""`pharmasync gateway boxes ...` and `gateway run` argument handling, as staff use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.cli import main
from device import provision


def write_config(tmp: Path) -> Path:
    path = tmp / "gateway.toml"
    path.write_text('[gateway]\nsite = "w1"\ndata_dir = "data"\n')
    return path


def test_register_a_provisioned_box_then_list_and_remove_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    box = provision.provision(tmp_path / "boxes", "w1", "Cold room A", "h", insecure_acks=True)
    assert (
        main(["gateway", "boxes", "--config", str(config), "add", str(box.folder), "--zone", "A"])
        == 0
    )
    assert f"registered box {box.device_id} (Cold room A)" in capsys.readouterr().out
    assert main(["gateway", "boxes", "--config", str(config), "list"]) == 0
    listed = capsys.readouterr().out
    assert box.device_id in listed and "zone=A" in listed and box.key.hex() in listed
    assert (tmp_path / "data" / "registry.json").exists()
    assert main(["gateway", "boxes", "--config", str(config), "remove", box.key.hex()]) == 0
    assert main(["gateway", "boxes", "--config", str(config), "remove", box.key.hex()]) == 1


def test_a_bad_key_or_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["gateway", "boxes", "--config", str(config), "add", "abcd"]) == 2
    assert "want 32 bytes" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nsite = "w/1"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["gateway", "run", "--config", str(bad)])
    assert exit_.value.code == 2
    assert "[gateway] site: got 'w/1'" in capsys.readouterr().err


def test_key_prints_the_same_public_key_every_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device import schnorr

    config = write_config(tmp_path)
    assert main(["gateway", "key", "--config", str(config)]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["gateway", "key", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == first
    key_file = tmp_path / "data" / "gateway.key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert schnorr.pubkey(bytes.fromhex(key_file.read_text())).hex() == first


def test_certify_writes_the_owners_certificate_of_a_gateway_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from device import cert, schnorr

    owner_file = tmp_path / "owner.key"
    owner_secret = bytes(31) + b"\x71"
    owner_file.write_text(owner_secret.hex() + "\n")
    gw_key = schnorr.pubkey(bytes(31) + b"\x72")
    out = tmp_path / "gw.cert"
    args = ["gateway", "certify", "--owner-key", str(owner_file), "--gateway-key", gw_key.hex()]
    assert main([*args, "--site", "w1", "--days", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    owner = schnorr.pubkey(owner_secret)
    assert f"--owner-pub {owner.hex()}" in printed and str(out) in printed
    c = cert.verify(bytes.fromhex(out.read_text()), owner, int(time.time()))
    assert (c.gateway, c.site) == (gw_key, "w1")
    assert 30 * 86400 <= c.not_after - c.not_before <= 30 * 86400 + 600
    # Each mistake is one clear line and exit status 2.
    assert main([*args, "--site", "w/1", "--out", str(out)]) == 2
    assert "site: got 'w/1'" in capsys.readouterr().err
    assert main([*args, "--site", "w1", "--days", "0", "--out", str(out)]) == 2
    assert "days: got 0" in capsys.readouterr().err
    bad = ["gateway", "certify", "--owner-key", str(tmp_path / "none"), "--gateway-key", "ab"]
    assert main([*bad, "--site", "w1"]) == 2
    assert "--owner-key" in capsys.readouterr().err
    assert main([*args[:4], "--gateway-key", "abcd", "--site", "w1", "--out", str(out)]) == 2
    assert "gateway key: got 2 bytes, want 32" in capsys.readouterr().err
