"""The verifier on hostile bundles (issue 10, section 1): whatever a bundle holds — any
value in any field, deep nesting, huge numbers, bytes that are not UTF-8, a file of any
size — `verify_bundle` raises only BundleError, and `pharmasync verify` exits 3 with one
line on stderr, never a traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.audit.bundle import MAX_BUNDLE_BYTES, BundleError, Step, verify_bundle
from tests.cloud.log_stub import BOX, GATEWAY, Ledger

REPO = Path(__file__).resolve().parents[3]
FIELDS = [
    ("reading",),
    ("batch",),
    ("batch", "header"),
    ("batch", "index"),
    ("batch", "size"),
    ("batch", "proof"),
    ("log",),
    ("log", "entry"),
    ("log", "index"),
    ("log", "size"),
    ("log", "proof"),
    ("checkpoint",),
    ("log_vkey",),
]


@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    ledger = Ledger()
    for count in (5, 3, 4):
        ledger.add_batch(GATEWAY, BOX, count)
    bundle: dict[str, Any] = ledger.bundle(1, 2)
    verify_bundle(bundle)  # it verifies as it is
    return bundle


def with_field(good: dict[str, Any], field: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of bundle `good` with `value` at the path `field`."""
    bundle = copy.deepcopy(good)
    parent = bundle
    for name in field[:-1]:
        parent = parent[name]
    parent[field[-1]] = value
    return bundle


huge = st.sampled_from([2**63, 2**64, 10**19, -1, -(2**63), 10**40])
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | huge
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=40).map(bytes.hex),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(field=st.sampled_from(FIELDS), value=values, as_text=st.booleans())
@SETTINGS
def test_any_value_in_any_field_is_a_bundle_error_or_verifies(
    good: dict[str, Any], field: tuple[str, ...], value: object, as_text: bool
) -> None:
    bundle = with_field(good, field, value)
    try:
        verify_bundle(json.dumps(bundle) if as_text else bundle)
    except BundleError as e:
        assert e.got and e.want


@given(st.binary(max_size=500) | st.text(max_size=500))
@SETTINGS
def test_any_document_is_a_shape_error_or_verifies(data: bytes | str) -> None:
    try:
        verify_bundle(data)
    except BundleError as e:
        assert e.step is Step.SHAPE and e.got and e.want


@pytest.mark.parametrize(
    ("document", "got"),
    [
        (b"[" * 100_000, "nesting deeper than 16"),
        (b'{"reading": ' * 50_000, "nesting deeper than 16"),
        (b'{"reading": "\xff"}', "invalid UTF-8 at byte 13"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "an integer of 5001 digits"),
        (b"[]", "list"),
    ],
)
def test_hostile_documents_fail_the_shape_step_with_their_reason(document: bytes, got: str) -> None:
    with pytest.raises(BundleError) as e:
        verify_bundle(document)
    assert e.value.step is Step.SHAPE and e.value.got == got


def run_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud.audit.verify", str(path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"[" * 100_000, "got nesting deeper than 16, want at most 16 levels"),
        (b"\xff\xfe{}", "got invalid UTF-8 at byte 0, want UTF-8"),
        (b"1" * 5000, "got an integer of 5000 digits, want at most 40"),
        (b" " * (MAX_BUNDLE_BYTES + 1), f"got more than {MAX_BUNDLE_BYTES} bytes"),
    ],
)
def test_the_cli_refuses_a_hostile_file_in_one_line_and_exits_3(
    tmp_path: Path, document: bytes, reason: str
) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(document)
    done = run_cli(path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.splitlines() == ["verification FAILED at step 'bundle shape'"]
    assert done.stdout.startswith("✗ bundle shape") and reason in done.stdout, done.stdout
    done = run_cli(path, "--json")
    assert done.returncode == 3 and json.loads(done.stdout)["step"] == "bundle shape"


@given(field=st.sampled_from(FIELDS), value=values)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_cli_never_shows_a_traceback(
    tmp_path: Path, good: dict[str, Any], field: tuple[str, ...], value: object
) -> None:
    bundle = with_field(good, field, value)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    done = run_cli(path)
    assert done.returncode in (0, 3), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 1, done.stderr


def test_a_key_file_is_read_at_most_its_bound(tmp_path: Path) -> None:
    """`--log-vkey @FILE` read the whole file: `@/dev/zero` or `@/dev/urandom` took memory
    until the kernel killed the process (23 GB here). A key file is read up to
    MAX_KEY_FILE bytes; a larger one is a usage error naming the bound, exit 2."""
    from cloud.audit.verify import MAX_KEY_FILE

    path = tmp_path / "ledger.vkey"
    path.write_text("ledger.example/pharmasync+ae3b506f+AAAA\n" + " " * MAX_KEY_FILE)
    done = run_cli(
        Path("-"), "--public", "-", "--log-vkey", f"@{path}", "--gtin", "1", "--lot", "L"
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"is over {MAX_KEY_FILE} bytes, want a key file" in done.stderr.splitlines()[-1]
    done = run_cli(
        Path("-"), "--public", "-", "--log-vkey", "@/dev/zero", "--gtin", "1", "--lot", "L"
    )
    assert done.returncode == 2 and f"over {MAX_KEY_FILE} bytes" in done.stderr, done.stderr
