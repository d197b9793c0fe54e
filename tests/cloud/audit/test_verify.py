"""The auditor's bundle verifier: a real bundle verifies, and every single tampering fails
at the step that names it, with got/want. Plus `pharmasync verify BUNDLE` as users run it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.audit.verify import BundleError, Step, verify_bundle
from cloud.log import tlog
from device import reading
from gateway import batch
from gateway.checkpoint import Checkpoint, CosignatureSigner, cosign, sign_checkpoint
from gateway.note import KeyFormatError, Signer
from tests.cloud.log_stub import BOX, GATEWAY, OTHER_GATEWAY, T0, Ledger, box_key, secret

REPO = Path(__file__).resolve().parents[3]
ORDER = list(Step)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    """Seven batches from two gateways, of 1 to 5 readings: trees of odd shapes."""
    ledger = Ledger()
    for count, gateway in zip((5, 3, 1, 4, 2, 5, 3), (GATEWAY, OTHER_GATEWAY) * 4, strict=False):
        ledger.add_batch(gateway, BOX, count)
    return ledger


@pytest.fixture
def good(ledger: Ledger) -> dict:
    """Reading 2 of the 5 in batch entry 5, in the log of 7 entries."""
    return ledger.bundle(5, 2)


def flip_hex(text: str, byte: int) -> str:
    raw = bytearray.fromhex(text)
    raw[byte] ^= 0x01
    return raw.hex()


def test_a_real_bundle_verifies_and_reports_the_reading(ledger: Ledger, good: dict) -> None:
    report = verify_bundle(good, log_vkey=ledger.vkey, device_key=box_key())
    wire = bytes.fromhex(good["reading"])
    decoded = reading.decode(wire)
    assert report.reading.box_key == box_key()
    assert (report.reading.seq, report.reading.time) == (decoded.seq, decoded.time)
    assert report.reading.temperature_c == decoded.temperature / 100
    assert report.reading.humidity_pct == decoded.humidity / 100
    assert report.reading.flags == ()
    assert report.gateway_key == batch.decode(bytes.fromhex(good["batch"]["header"])).gateway_key
    assert (report.batch_seq, report.batch_index, report.batch_size) == (2, 2, 5)
    assert (report.log_index, report.log_size) == (5, 7)
    assert report.checkpoint_origin == ledger.origin
    assert report.checkpoint_root == ledger.tree().root()
    assert report.log_key_pinned and report.log_vkey == ledger.vkey
    assert [s for s, _ in report.steps] == [s for s in ORDER if s is not Step.WITNESSES]
    assert "pinned by you" in report.notes[0]
    assert json.loads(json.dumps(report.to_json()))["reading"]["box_key"] == box_key().hex()


@pytest.mark.parametrize(("entry", "leaf"), [(0, 0), (0, 4), (2, 0), (6, 2), (3, 3)])
def test_every_position_verifies(ledger: Ledger, entry: int, leaf: int) -> None:
    report = verify_bundle(ledger.bundle(entry, leaf), log_vkey=ledger.vkey)
    assert (report.log_index, report.batch_index) == (entry, leaf)


def test_a_bundle_for_an_older_checkpoint_verifies(ledger: Ledger) -> None:
    report = verify_bundle(ledger.bundle(1, 1, size=3), log_vkey=ledger.vkey)
    assert report.log_size == 3


def test_json_text_is_accepted(ledger: Ledger, good: dict) -> None:
    assert verify_bundle(json.dumps(good), log_vkey=ledger.vkey).log_index == 5


def test_without_a_pinned_key_it_verifies_but_says_unpinned(good: dict) -> None:
    report = verify_bundle(good)
    assert not report.log_key_pinned
    assert any("UNPINNED" in note and "self-asserted" in note for note in report.notes)
    assert any("--device" in note for note in report.notes)


def test_a_rebuilt_fake_log_passes_unpinned_and_fails_pinned(ledger: Ledger) -> None:
    """What 'unpinned' means: anyone can make a self-consistent bundle with their own key."""
    fake = ledger.copy()
    fake.signer = Signer(ledger.origin, secret("forger"))
    forged = fake.bundle(5, 2)
    assert not verify_bundle(forged).log_key_pinned
    with pytest.raises(BundleError) as err:
        verify_bundle(forged, log_vkey=ledger.vkey)
    assert err.value.step is Step.LOG_KEY
    # ...and if the forger also claims the real key, the signature step catches it.
    forged["log_vkey"] = ledger.vkey
    with pytest.raises(BundleError) as err:
        verify_bundle(forged, log_vkey=ledger.vkey)
    assert err.value.step is Step.CHECKPOINT_SIGNATURE


def _set(path: str, value: object) -> Callable[[dict, Ledger], None]:
    def mutate(bundle: dict, _: Ledger) -> None:
        *parents, last = path.split(".")
        target = bundle
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _flip(path: str, byte: int) -> Callable[[dict, Ledger], None]:
    def mutate(bundle: dict, _: Ledger) -> None:
        *parents, last = path.split(".")
        target = bundle
        for key in parents:
            target = target[key]
        target[last] = flip_hex(target[last], byte)

    return mutate


def _flip_proof(part: str, position: int) -> Callable[[dict, Ledger], None]:
    def mutate(bundle: dict, _: Ledger) -> None:
        bundle[part]["proof"][position] = flip_hex(bundle[part]["proof"][position], 31)

    return mutate


def _other_entry(bundle: dict, ledger: Ledger) -> None:
    bundle["log"]["entry"] = ledger.entries[4].hex()


def _unknown_entry_kind(bundle: dict, _: Ledger) -> None:
    bundle["log"]["entry"] = "02" + bundle["log"]["entry"][2:]


def _checkpoint_other_size(bundle: dict, ledger: Ledger) -> None:
    bundle["checkpoint"] = ledger.checkpoint(6)


def _checkpoint_other_key(bundle: dict, ledger: Ledger) -> None:
    bundle["checkpoint"] = ledger.checkpoint(signer=Signer(ledger.origin, secret("other")))


def _checkpoint_other_root(bundle: dict, ledger: Ledger) -> None:
    # A well-signed checkpoint of the right size whose root is not the log's.
    cp = Checkpoint(ledger.origin, 7, bytes(32))
    bundle["checkpoint"] = sign_checkpoint(cp, ledger.signer)


def _checkpoint_text_edited(bundle: dict, ledger: Ledger) -> None:
    bundle["checkpoint"] = bundle["checkpoint"].replace("\n7\n", "\n8\n", 1)


def _pinned_key_differs(bundle: dict, _: Ledger) -> None:
    bundle["log_vkey"] = Signer("ledger.test/log", secret("other")).verifier().to_vkey()


def _reading_of_another_batch(bundle: dict, ledger: Ledger) -> None:
    bundle["reading"] = ledger.readings[0][2].hex()


TAMPERINGS: list[tuple[str, Callable[[dict, Ledger], None], Step]] = [
    ("no reading", lambda b, _: b.pop("reading"), Step.SHAPE),
    ("reading not hex", _set("reading", "zz"), Step.SHAPE),
    ("odd hex", _set("reading", "abc"), Step.SHAPE),
    ("index true", _set("batch.index", True), Step.SHAPE),
    ("negative size", _set("log.size", -1), Step.SHAPE),
    ("proof not list", _set("log.proof", "00"), Step.SHAPE),
    ("checkpoint not text", _set("checkpoint", 7), Step.SHAPE),
    ("reading version", _flip("reading", 0), Step.READING),
    ("reading temperature", _flip("reading", 42), Step.READING_SIGNATURE),
    ("reading signature", _flip("reading", 100), Step.READING_SIGNATURE),
    ("header version", _flip("batch.header", 0), Step.BATCH_HEADER),
    ("header first time", _flip("batch.header", 80), Step.BATCH_SIGNATURE),
    ("header root", _flip("batch.header", 100), Step.BATCH_SIGNATURE),
    ("batch size", _set("batch.size", 6), Step.BATCH_SIZE),
    ("batch proof hash", _flip_proof("batch", 1), Step.BATCH_INCLUSION),
    ("batch proof short", lambda b, _: b["batch"]["proof"].pop(), Step.BATCH_INCLUSION),
    ("batch index", _set("batch.index", 3), Step.BATCH_INCLUSION),
    ("batch index range", _set("batch.index", 5), Step.BATCH_INCLUSION),
    ("reading of another batch", _reading_of_another_batch, Step.BATCH_INCLUSION),
    ("entry of another header", _other_entry, Step.LOG_ENTRY),
    ("entry kind", _unknown_entry_kind, Step.LOG_ENTRY),
    ("entry header byte", _flip("log.entry", 50), Step.LOG_ENTRY),
    ("pinned key mismatch", _pinned_key_differs, Step.LOG_KEY),
    ("checkpoint other key", _checkpoint_other_key, Step.CHECKPOINT_SIGNATURE),
    ("checkpoint text edited", _checkpoint_text_edited, Step.CHECKPOINT_SIGNATURE),
    ("checkpoint other size", _checkpoint_other_size, Step.CHECKPOINT_SIZE),
    ("log size", _set("log.size", 8), Step.CHECKPOINT_SIZE),
    ("checkpoint other root", _checkpoint_other_root, Step.LOG_INCLUSION),
    ("log proof hash", _flip_proof("log", 0), Step.LOG_INCLUSION),
    ("log proof long", lambda b, _: b["log"]["proof"].append("00" * 32), Step.LOG_INCLUSION),
    ("log index", _set("log.index", 4), Step.LOG_INCLUSION),
    ("log index range", _set("log.index", 7), Step.LOG_INCLUSION),
]


@pytest.mark.parametrize(
    ("mutate", "step"), [(m, s) for _, m, s in TAMPERINGS], ids=[n for n, _, _ in TAMPERINGS]
)
def test_each_tampering_fails_at_its_step(
    ledger: Ledger, good: dict, mutate: Callable[[dict, Ledger], None], step: Step
) -> None:
    bundle = copy.deepcopy(good)
    mutate(bundle, ledger)
    with pytest.raises(BundleError) as err:
        verify_bundle(bundle, log_vkey=ledger.vkey)
    assert err.value.step is step, str(err.value)
    assert str(err.value).startswith(f"{step.value}: ")
    assert ": got " in str(err.value) and ", want " in str(err.value)
    # Every earlier check ran and held; none after it ran.
    earlier = [s for s in ORDER[: ORDER.index(step)] if s is not Step.DEVICE_KEY]
    assert [s for s, _ in err.value.passed] == earlier


def test_got_and_want_carry_the_values(ledger: Ledger, good: dict) -> None:
    bundle = copy.deepcopy(good)
    bundle["checkpoint"] = ledger.checkpoint(6)
    with pytest.raises(BundleError) as err:
        verify_bundle(bundle, log_vkey=ledger.vkey)
    assert (err.value.got, err.value.want) == ("6", "7 (log.size)")

    bundle = copy.deepcopy(good)
    bundle["batch"]["proof"][0] = flip_hex(bundle["batch"]["proof"][0], 0)
    with pytest.raises(BundleError) as err:
        verify_bundle(bundle, log_vkey=ledger.vkey)
    header = batch.decode(bytes.fromhex(good["batch"]["header"]))
    assert err.value.want == header.merkle_root.hex()
    assert err.value.got.startswith("root ") and header.merkle_root.hex() not in err.value.got


def test_invalid_json_text_fails_the_shape_step() -> None:
    with pytest.raises(BundleError) as err:
        verify_bundle("{not json")
    assert err.value.step is Step.SHAPE and "invalid JSON" in err.value.got


def test_a_box_id_names_the_box_as_its_key_does(ledger: Ledger, good: dict) -> None:
    """The 16-hex-digit id the demo and the gateway print is the key's first 8 bytes."""
    report = verify_bundle(good, log_vkey=ledger.vkey, device_key=box_key()[:8])
    assert report.reading.box_key == box_key()
    with pytest.raises(BundleError) as err:
        verify_bundle(good, log_vkey=ledger.vkey, device_key=box_key(secret("other box"))[:8])
    assert err.value.step is Step.DEVICE_KEY


def test_another_box_fails_the_device_step(ledger: Ledger, good: dict) -> None:
    with pytest.raises(BundleError) as err:
        verify_bundle(good, log_vkey=ledger.vkey, device_key=box_key(secret("other box")))
    assert err.value.step is Step.DEVICE_KEY
    assert err.value.got == box_key().hex()


def test_a_batch_entry_of_a_forged_reading_fails_at_the_reading_signature() -> None:
    """A gateway that seals a reading whose box signature is bad cannot make it verify."""
    ledger = Ledger()
    wires = ledger.sign_readings(BOX, 3)
    forged = bytearray(wires[1])
    forged[42] ^= 1
    wires[1] = bytes(forged)
    ledger.append(batch.seal(GATEWAY, 0, batch.GENESIS_PREV, wires), wires)
    with pytest.raises(BundleError) as err:
        verify_bundle(ledger.bundle(0, 1), log_vkey=ledger.vkey)
    assert err.value.step is Step.READING_SIGNATURE


def test_clock_unsynced_readings_say_so() -> None:
    ledger = Ledger()
    wire = reading.sign(BOX, 1, 500, 300, 4000, reading.FLAG_CLOCK_UNSYNCED, aux=bytes(32))
    ledger.append(batch.seal(GATEWAY, 0, batch.GENESIS_PREV, [wire]), [wire])
    report = verify_bundle(ledger.bundle(0, 0), log_vkey=ledger.vkey)
    assert report.reading.flags == ("clock_unsynced",)
    assert any("unsynced" in n for n in report.notes)


@pytest.fixture(scope="module")
def witnesses() -> list[CosignatureSigner]:
    return [CosignatureSigner(f"witness-{i}.test", secret(f"witness {i}")) for i in range(3)]


class TestWitnesses:
    def cosigned(self, bundle: dict, *signers: CosignatureSigner, when: int = T0) -> dict:
        text = bundle["checkpoint"].split("\n\n")[0] + "\n"
        bundle = copy.deepcopy(bundle)
        bundle["checkpoint"] += "".join(cosign(text, s, when) for s in signers)
        return bundle

    def vkeys(self, signers: list[CosignatureSigner]) -> list[str]:
        return [s.verifier().to_vkey() for s in signers]

    def test_cosignatures_are_checked_and_counted(
        self, ledger: Ledger, good: dict, witnesses: list[CosignatureSigner]
    ) -> None:
        bundle = self.cosigned(good, witnesses[0], witnesses[2])
        report = verify_bundle(
            bundle, log_vkey=ledger.vkey, witnesses=self.vkeys(witnesses), min_cosignatures=2
        )
        assert [c.name for c in report.cosignatures] == ["witness-0.test", "witness-2.test"]
        assert {c.timestamp for c in report.cosignatures} == {T0}
        assert report.steps[-1][0] is Step.WITNESSES

    def test_too_few_cosignatures_fail(
        self, ledger: Ledger, good: dict, witnesses: list[CosignatureSigner]
    ) -> None:
        bundle = self.cosigned(good, witnesses[0])
        with pytest.raises(BundleError) as err:
            verify_bundle(
                bundle, log_vkey=ledger.vkey, witnesses=self.vkeys(witnesses), min_cosignatures=2
            )
        assert err.value.step is Step.WITNESSES
        assert err.value.got == "1 cosignatures (witness-0.test)"

    def test_a_forged_cosignature_fails_even_when_not_needed(
        self, ledger: Ledger, good: dict, witnesses: list[CosignatureSigner]
    ) -> None:
        # The witness's line over another checkpoint (size 6) pasted onto this one.
        other = ledger.checkpoint(6).split("\n\n")[0] + "\n"
        bundle = copy.deepcopy(good)
        bundle["checkpoint"] += cosign(other, witnesses[1], T0)
        with pytest.raises(BundleError) as err:
            verify_bundle(bundle, log_vkey=ledger.vkey, witnesses=self.vkeys(witnesses))
        assert err.value.step is Step.WITNESSES and err.value.subject.startswith("witness-1")

    def test_one_witness_given_twice_counts_once(
        self, ledger: Ledger, good: dict, witnesses: list[CosignatureSigner]
    ) -> None:
        bundle = self.cosigned(good, witnesses[0])
        twice = self.vkeys(witnesses[:1]) * 2
        with pytest.raises(ValueError, match=re.escape("min_cosignatures: got 2, want 0..1")):
            verify_bundle(bundle, log_vkey=ledger.vkey, witnesses=twice, min_cosignatures=2)

    def test_unknown_cosigners_are_ignored(
        self, ledger: Ledger, good: dict, witnesses: list[CosignatureSigner]
    ) -> None:
        bundle = self.cosigned(good, witnesses[2])
        report = verify_bundle(bundle, log_vkey=ledger.vkey, witnesses=self.vkeys(witnesses[:1]))
        assert report.cosignatures == ()
        assert "cosigned by 0 of 1" in report.notes[-1]


def test_bad_arguments_are_value_errors_before_any_check(good: dict) -> None:
    with pytest.raises(KeyFormatError):
        verify_bundle(good, log_vkey="not a key")
    with pytest.raises(ValueError, match="device_key"):
        verify_bundle(good, device_key=b"short")
    with pytest.raises(ValueError, match="min_cosignatures"):
        verify_bundle(good, min_cosignatures=1)


def test_the_entry_must_be_exactly_the_batch_entry(ledger: Ledger, good: dict) -> None:
    entry = bytes.fromhex(good["log"]["entry"])
    assert tlog.parse_entry(entry) == ("batch", bytes.fromhex(good["batch"]["header"]))
    bundle = copy.deepcopy(good)
    bundle["log"]["entry"] = good["log"]["entry"] + "00"  # a trailing byte
    with pytest.raises(BundleError) as err:
        verify_bundle(bundle, log_vkey=ledger.vkey)
    assert err.value.step is Step.LOG_ENTRY


# --- `pharmasync verify BUNDLE` as a user runs it (cloud.cli does not know it yet) ---------


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud.audit.verify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_cli_verifies_a_bundle_file(tmp_path: Path, ledger: Ledger, good: dict) -> None:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(good))
    (tmp_path / "log.vkey").write_text(ledger.vkey + "\n")
    done = run_cli(
        str(path), "--log-vkey", f"@{tmp_path / 'log.vkey'}", "--device", box_key().hex()
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ticks = [line for line in lines if line.startswith("✓ ")]
    assert [t.split("  ")[0][2:].strip() for t in ticks][:3] == [
        "bundle shape",
        "reading",
        "reading signature",
    ]
    assert len(ticks) == len(ORDER) - 1  # all but witnesses
    decoded = reading.decode(bytes.fromhex(good["reading"]))
    assert f"{decoded.temperature / 100:.2f} °C" in done.stdout
    assert "entry 5 of 7" in done.stdout
    assert "UNPINNED" not in done.stdout


def test_cli_reads_stdin_and_prints_json(ledger: Ledger, good: dict) -> None:
    done = run_cli("-", "--json", stdin=json.dumps(good))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["log_key_pinned"] is False
    assert report["log"] == {"index": 5, "size": 7}


def test_cli_names_the_failed_step_and_exits_3(tmp_path: Path, ledger: Ledger, good: dict) -> None:
    bundle = copy.deepcopy(good)
    bundle["log"]["size"] = 8
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(bundle))
    done = run_cli(str(path), "--log-vkey", ledger.vkey)
    assert done.returncode == 3
    assert "✗ checkpoint size" in done.stdout and "got 7, want 8 (log.size)" in done.stdout
    assert "FAILED at step 'checkpoint size'" in done.stderr

    done = run_cli(str(path), "--log-vkey", ledger.vkey, "--json")
    assert done.returncode == 3
    failure = json.loads(done.stdout)
    assert (failure["ok"], failure["step"], failure["got"]) == (False, "checkpoint size", "7")


def test_cli_requires_every_witness_by_default(ledger: Ledger, good: dict) -> None:
    witness = CosignatureSigner("w.test", secret("w")).verifier().to_vkey()
    done = run_cli("-", "--witness", witness, stdin=json.dumps(good))
    assert done.returncode == 3 and "witness cosignatures" in done.stdout
    done = run_cli("-", "--witness", witness, "--min-cosignatures", "0", stdin=json.dumps(good))
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["proof.json", "--cloud", "http://x"],
        ["proof.json", "--once"],
        ["--cloud", "http://x", "--json"],
        ["proof.json", "--log-vkey", "garbage"],
        ["missing.json"],
        ["proof.json", "--device", "abcd"],
    ],
    ids=["nothing", "both", "once-with-bundle", "json-with-cloud", "bad-vkey", "missing", "dev"],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, good: dict, args: list[str]) -> None:
    (tmp_path / "proof.json").write_text(json.dumps(good))
    done = subprocess.run(
        [sys.executable, "-m", "cloud.audit.verify", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error" in done.stderr


def test_cli_help_has_examples() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and "--cloud https://" in done.stdout
