"""`pharmasync lots qr` as a user runs it: the Digital Link it prints, its QR code (in the
terminal and as PNG/SVG files) and the pack's GS1 DataMatrix, each decoded by an independent
reader (zxing-cpp) and the decoded text parsed back by the project's own GS1 parsers."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from cloud import gs1_labels
from cloud.contracts.digital_link import parse_digital_link
from cloud.contracts.gs1_element import GS, build_element_string, parse_element_string

EXE = Path(sys.executable).parent / "pharmasync"
TODAY = datetime.datetime.now(datetime.UTC).date()
PACK_LINK = "https://ledger.example/01/09506000134352/10/ABC123/21/XYZ?17=270300"


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "lots", "qr", *argv], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def decode(image: Image.Image) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcode(image)
    assert found is not None, "no code found in the image"
    return found


def terminal_image(text: str) -> Image.Image:
    """Turn segno's compact terminal text back into pixels: each character is two modules
    stacked (upper and lower half), a block character is a light module."""
    upper = {" ": 0, "\u2580": 1, "\u2584": 0, "\u2588": 1}
    lower = {" ": 0, "\u2580": 0, "\u2584": 1, "\u2588": 1}
    rows: list[list[int]] = []
    for line in text.splitlines():
        rows.append([upper[c] for c in line])
        rows.append([lower[c] for c in line])
    scale = 6
    image = Image.new("L", (len(rows[0]) * scale, len(rows) * scale), 255)
    for y, row in enumerate(rows):
        for x, light in enumerate(row):
            if not light:
                image.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    return image


def test_a_pack_gets_its_link_qr_and_datamatrix(tmp_path: Path) -> None:
    done = run(
        "09506000134352",
        "ABC123",
        "--serial",
        "XYZ",
        "--expiry",
        "270300",
        "--base-url",
        "https://ledger.example/",
        "--out",
        "pack.png",
        "--datamatrix",
        "pack-dm.png",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["digital_link"] == PACK_LINK
    assert printed["element_string"] == "(01)09506000134352(17)270300(10)ABC123(21)XYZ"
    qr = decode(Image.open(tmp_path / "pack.png"))
    assert qr.format == zxingcpp.BarcodeFormat.QRCode and qr.text == PACK_LINK
    assert parse_digital_link(qr.text, TODAY).serial == "XYZ"
    matrix = decode(Image.open(tmp_path / "pack-dm.png"))
    assert matrix.format == zxingcpp.BarcodeFormat.DataMatrix
    # FNC1 in first position (]d2: GS1 DataMatrix), one GS between the lot and the serial.
    assert matrix.symbology_identifier == "]d2"
    assert matrix.bytes == b"01095060001343521727030010ABC123" + GS.encode() + b"21XYZ"
    scan = parse_element_string("]d2" + matrix.bytes.decode("ascii"), TODAY)
    assert (scan.gtin, scan.lot, scan.serial, scan.expiry_yymmdd) == (
        "09506000134352",
        "ABC123",
        "XYZ",
        "270300",
    )


def test_a_lot_qr_prints_in_the_terminal_and_reads_back(tmp_path: Path) -> None:
    done = run("9506000134352", "L/7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    head, _, art = done.stdout.partition("\n\u2588")
    link = "https://id.gs1.org/01/09506000134352/10/L%2F7"
    assert f"digital_link: {link}" in head
    qr = decode(terminal_image("\u2588" + art))
    assert qr.text == link


def test_svg_files_are_written(tmp_path: Path) -> None:
    done = run("09506000134352", "L1", "--out", "lot.svg", "--datamatrix", "dm.SVG", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("lot.svg", "dm.SVG"):
        assert (tmp_path / name).read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["09506000134353", "L1"], 2, "AI 01: got '09506000134353', want check digit 2"),
        (["09506000134352", "L 1"], 2, "AI 10: got 'L 1'"),
        (["09506000134352", "L1", "--serial", "S" * 21], 2, "AI 21"),
        (["09506000134352", "L1", "--expiry", "271301"], 2, "AI 17"),
        (["09506000134352", "L1", "--base-url", "ftp://x"], 2, "uri: got 'ftp://x/'"),
        (["09506000134352", "L1", "--out", "a.jpg"], 1, "want .png or .svg"),
        (["09506000134352", "L1", "--out", "a.png", "--datamatrix", "b.gif"], 1, "b.gif"),
    ],
)
def test_bad_arguments_are_refused_and_write_nothing(
    tmp_path: Path, argv: list[str], status: int, message: str
) -> None:
    done = run(*argv, cwd=tmp_path)
    assert done.returncode == status
    assert message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_zint_the_datamatrix_is_refused_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zint", None)  # as if zint-bindings were not installed
    element = build_element_string("09506000134352", TODAY, lot="L1")
    with pytest.raises(gs1_labels.LabelError, match="pip install zint-bindings"):
        gs1_labels.write_datamatrix(element, tmp_path / "dm.png")


def test_zint_checks_the_ais_itself(tmp_path: Path) -> None:
    """A forged element string (a wrong GTIN check digit the builder would have refused) is
    refused by zint too: the DataMatrix is never printed with it."""
    forged = gs1_labels.ElementStrings("", "", (("01", "09506000134353"), ("10", "L1")))
    with pytest.raises(gs1_labels.LabelError, match="zint refused the element string"):
        gs1_labels.write_datamatrix(forged, tmp_path / "dm.png")
    assert not (tmp_path / "dm.png").exists()
