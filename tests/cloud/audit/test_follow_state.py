"""The follower's state file: it round-trips, is written atomically, refuses damage, and
lives per log URL under $XDG_STATE_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.audit.follow_state import (
    SOURCE_FIRST_USE,
    SOURCE_GIVEN,
    Equivocation,
    FollowState,
    GatewayHead,
    SeenReadings,
    StateError,
    default_state_path,
    load_state,
    save_state,
)
from tests.cloud.log_stub import build


def test_state_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    ledger = build(5)
    frontier = ledger.tree().compact_range()
    state = FollowState(
        url="http://x",
        log_vkey=ledger.vkey,
        log_vkey_source=SOURCE_FIRST_USE,
        origin=ledger.origin,
        size=5,
        root=ledger.tree().root(),
        checkpoint=ledger.checkpoint(),
        compact_range=tuple(h for _, _, h in frontier),
        gateways={k: GatewayHead(*v) for k, v in ledger.heads.items()},
    )
    path = tmp_path / "deep" / "state.json"
    save_state(path, state)
    save_state(path, state)
    assert load_state(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left
    with pytest.raises(StateError, match="compact_range"):
        FollowState("http://x", ledger.vkey, SOURCE_GIVEN, size=5, root=state.root)
    with pytest.raises(StateError, match="log_vkey"):
        FollowState("http://x", "nonsense", SOURCE_GIVEN)


def test_the_default_state_path_is_per_url_under_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    a = default_state_path("https://ledger.example")
    assert a == default_state_path("https://ledger.example/")
    assert a != default_state_path("https://other.example")
    assert a.parent == tmp_path / "pharmasync" and a.name.startswith("verify-")


def test_a_missing_file_is_no_state_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_state(path) is None
    for text, message in [
        ("[]", "want a JSON object"),
        ("{", "got invalid JSON"),
        ("[" * 100_000, "got nesting deeper than 16"),
        ("\udcff", "got invalid UTF-8 at byte 0"),
        ('{"version": 2}', "version: got 2, want 1"),
        ('{"version": 1}', "field 'url': got nothing"),
    ]:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(StateError, match=message):
            load_state(path)


def test_seen_readings_tell_duplicates_from_equivocations_and_keep_only_commits(
    tmp_path: Path,
) -> None:
    path = SeenReadings.path_for(tmp_path / "verify.json")
    assert path.name == "verify.readings.sqlite"
    box, other = b"\x01" * 32, b"\x02" * 32
    seen = SeenReadings(path, fresh=True)
    assert seen.record(5, 0, box, 7, b"a" * 110) is False  # first seen
    assert seen.record(5, 3, box, 7, b"a" * 110) is True  # the same bytes again
    assert seen.record(9, 1, box, 7, b"b" * 110) == Equivocation(box, 7, (5, 0), (9, 1))
    assert seen.record(9, 2, other, 7, b"b" * 110) is False  # another box's seq 7
    seen.commit()
    assert seen.record(10, 0, box, 8, b"c" * 110) is False
    seen.close()  # not committed: forgotten
    seen = SeenReadings(path, fresh=False)
    assert seen.record(10, 0, box, 8, b"c" * 110) is False
    assert seen.record(5, 0, box, 7, b"a" * 110) is False  # re-read at its own place
    assert seen.record(11, 0, box, 7, b"a" * 110) is True
    seen.close()
    seen = SeenReadings(path, fresh=True)  # a follower starting afresh forgets them all
    assert seen.record(11, 0, box, 7, b"b" * 110) is False
    seen.close()
