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
