"""[uplink] keys of cosigned receipts (gateway/settings.py): read, range-checked, and the keys
parsed at start-up so a typo is one clear line, not a failure at the first fetch."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import settings as gw_settings
from gateway.checkpoint import CosignatureSigner
from gateway.note import Signer

LOG = Signer.generate("example.org/ledger").verifier().to_vkey()
WITNESS = CosignatureSigner.generate("regulator.example/witness").verifier().to_vkey()


def load(uplink: dict[str, Any]) -> gw_settings.UplinkSettings:
    raw = {"gateway": {"site": "t"}, "uplink": {"url": "http://127.0.0.1:1", **uplink}}
    return gw_settings.from_dict(raw).uplink


def test_defaults_are_off_and_keys_are_read() -> None:
    assert load({}).cosignatures == 0 and load({}).witnesses == ()
    got = load({"cosignatures": 2, "log_vkey": LOG, "witnesses": [WITNESS, WITNESS]})
    assert (got.cosignatures, got.log_vkey, got.witnesses) == (2, LOG, (WITNESS, WITNESS))


@pytest.mark.parametrize(
    ("uplink", "words"),
    [
        ({"cosignatures": -1}, "[uplink] cosignatures: got -1, want 0..99"),
        ({"cosignatures": 100}, "[uplink] cosignatures: got 100"),
        ({"cosigned_poll_s": 0}, "[uplink] cosigned_poll_s: got 0"),
        ({"log_vkey": "nonsense"}, "[uplink] log_vkey:"),
        ({"witnesses": [WITNESS, "nonsense"]}, "[uplink] witnesses[1]:"),
        ({"witnesses": [1]}, "[uplink] witnesses: got [1], want a list of strings"),
        ({"witnesses": WITNESS}, "[uplink] witnesses: got"),
    ],
)
def test_bad_values_are_refused_by_name(uplink: dict[str, Any], words: str) -> None:
    with pytest.raises(gw_settings.SettingsError) as raised:
        load(uplink)
    assert words in str(raised.value)
