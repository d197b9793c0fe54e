"""Printable codes for a lot or a pack: its GS1 Digital Link as a QR Code (segno) and its
element string as a GS1 DataMatrix (zint, through the zint-bindings package).

The QR Code is a full QR Code, never a Micro QR (phones do not read those), at error level
M. The GS1 DataMatrix starts with FNC1 (so a scanner sends the ]d2 identifier) and separates
a variable-length value from the next AI with FNC1, which zint derives from the bracketed AI
input ("[01]...[17]...[10]...[21]..."); zint also checks the AIs itself. Files are written
by their extension: .png or .svg.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final

import segno

from cloud.contracts.gs1_element import ElementStrings

FORMATS: Final = (".png", ".svg")
QR_SCALE: Final = 8  # pixels per module in a PNG or SVG file
DATAMATRIX_SCALE: Final = 4


class LabelError(Exception):
    """A code cannot be written: no encoder installed, an unknown file type, the encoder's
    own refusal. str() says why."""


def qr(uri: str) -> segno.QRCode:
    """The QR Code (not Micro QR) of a Digital Link URI, error correction level M."""
    return segno.make_qr(uri, error="m")


def qr_terminal(uri: str) -> str:
    """The QR Code as text for a terminal (segno's compact form: Unicode half blocks, two
    modules a line, light modules drawn so that a dark terminal shows the code as printed)."""
    out = io.StringIO()
    qr(uri).terminal(out=out, compact=True)
    return out.getvalue()


def check_format(path: Path) -> None:
    """Raise LabelError unless `path` ends in .png or .svg (any case)."""
    if path.suffix.lower() not in FORMATS:
        raise LabelError(f"{path}: got {path.suffix or 'no extension'!r}, want .png or .svg")


def write_qr(uri: str, path: Path) -> None:
    """Write the QR Code of `uri` to `path` (.png or .svg) with a 4-module quiet zone."""
    check_format(path)
    qr(uri).save(str(path), scale=QR_SCALE, border=4)


def _zint() -> Any:
    try:
        import zint
    except ImportError:
        raise LabelError(
            "no GS1 DataMatrix encoder is installed: `pip install zint-bindings` adds zint"
        ) from None
    return zint


def write_datamatrix(element: ElementStrings, path: Path) -> None:
    """Write the GS1 DataMatrix of a checked element string to `path` (.png or .svg), with a
    quiet zone. Raises LabelError if zint is missing or refuses the data."""
    check_format(path)
    zint = _zint()
    symbol = zint.Symbol()
    symbol.symbology = zint.Symbology.DATAMATRIX
    symbol.input_mode = zint.InputMode.GS1
    symbol.output_options = zint.OutputOptions.BARCODE_QUIET_ZONES
    symbol.scale = DATAMATRIX_SCALE
    symbol.warn_level = zint.WarningLevel.FAIL_ALL  # a warning (e.g. a checksum) refuses
    try:
        symbol.encode("".join(f"[{ai}]{value}" for ai, value in element.elements))
        symbol.outfile = str(path)
        symbol.print()
    except RuntimeError as e:
        raise LabelError(f"zint refused the element string: {e}") from None
