"""Provisioning a sensor box on the host: its identity, its config and its QR label.

`pharmasync device provision` writes one folder per box:

    boxes/<device-id>/config.json   what the box needs to run (device/config.py)
    boxes/<device-id>/secret.key    its BIP-340 secret, hex, mode 0600 (absent with --on-board)
    boxes/<device-id>/label.svg     a printable label: QR code + site, label and id
    boxes/<device-id>/label.png

The QR code carries `pharmasync:box:v1:<x-only key hex>`, so whoever scans the label
when attaching the box to a lot gets the exact key the box's readings are signed with.
CPython only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from device import config, keyfile, schnorr, topics

QR_PREFIX = "pharmasync:box:v1:"


class ProvisionError(ValueError):
    """Provisioning cannot go ahead; str() says what to change."""


@dataclass(frozen=True)
class Box:
    """A provisioned box: where its files are and who it is."""

    folder: Path
    key: bytes
    device_id: str
    config: dict


def parse_broker(text: str) -> tuple[str, int]:
    """Return (host, port) from 'host' or 'host:port'. Raises ProvisionError."""
    host, sep, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ProvisionError(f"broker: got {text!r}, want HOST or HOST:PORT")
    if not sep:
        return host, 1883
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ProvisionError(f"broker port: got {port_text!r}, want 1..65535")
    return host, int(port_text)


def qr_payload(key: bytes) -> str:
    """Return the text a box's QR label encodes."""
    return QR_PREFIX + key.hex()


def provision(
    out: Path,
    site: str,
    label: str,
    broker: str,
    *,
    interval_s: int = 60,
    power: str = "mains",
    publish_every: int = 10,
    dht_pin: int = 4,
    wifi_ssid: str | None = None,
    wifi_password: str | None = None,
    owner_key: str | None = None,
    insecure_acks: bool = False,
    battery_adc_pin: int | None = None,
    public_key: bytes | None = None,
) -> Box:
    """Create a new box folder under `out` and return it.

    Generates the secret on this host unless `public_key` is given (a key made on the board,
    whose secret never leaves it). The box trusts acks from gateways that `owner_key` (hex)
    certified; without it, `insecure_acks` must be set. Raises ProvisionError or
    config.ConfigError.
    """
    host, port = parse_broker(broker)
    raw: dict = {
        "site": site,
        "label": label,
        "interval_s": interval_s,
        "power": power,
        "publish_every": publish_every,
        "dht_pin": dht_pin,
        "mqtt": {"host": host, "port": port},
    }
    if wifi_ssid is not None:
        raw["wifi"] = {"ssid": wifi_ssid, "password": wifi_password or ""}
    if owner_key is not None:
        raw["owner_key"] = owner_key.lower()
    if insecure_acks:
        raw["insecure_acks"] = True
    if battery_adc_pin is not None:
        raw["battery_adc_pin"] = battery_adc_pin
    cfg = config.validate(raw)  # refuse a config the box would refuse at boot

    secret = None
    if public_key is None:
        secret = os.urandom(32)
        public_key = schnorr.pubkey(secret)
    raw["key"] = public_key.hex()
    dev_id = topics.device_id(public_key)
    folder = out / dev_id
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise ProvisionError(
            f"{folder} exists: a box with this id is provisioned already"
        ) from None
    (folder / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    if secret is not None:
        keyfile.create_secret_text(folder / "secret.key", secret.hex())
    (folder / "label.svg").write_text(label_svg(public_key, site, label))
    label_png(public_key, site, label).save(folder / "label.png")
    return Box(folder, public_key, dev_id, cfg)


# -- the label ---------------------------------------------------------------------------

LABEL_W, LABEL_H = 620, 260  # px at 1 px per SVG unit (about 62 x 26 mm at 10 px/mm)
QR_SIZE = 220


def _lines(key: bytes, site: str, label: str) -> list[tuple[str, int, bool]]:
    """Return the label's text lines as (text, size, bold)."""
    return [
        ("PharmaSync sensor box", 22, True),
        (label or "(no label)", 20, False),
        (f"site: {site}", 18, False),
        (f"id: {topics.device_id(key)}", 18, False),
        ("key: " + key.hex()[:32], 12, False),
        ("key: " + key.hex()[32:], 12, False),
    ]


def label_svg(key: bytes, site: str, label: str) -> str:
    """Return the label as an SVG document: QR code on the left, text on the right."""
    qr = segno.make(qr_payload(key), error="m")
    matrix = list(qr.matrix)
    scale = QR_SIZE / (len(matrix) + 8)  # 4-module quiet zone on each side
    cells = []
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                cells.append(
                    f"M{(x + 4) * scale + 20:.2f},{(y + 4) * scale + 20:.2f}h{scale:.2f}"
                    f"v{scale:.2f}h-{scale:.2f}z"
                )
    text, y = [], 52
    for line, size, bold in _lines(key, site, label):
        weight = ' font-weight="bold"' if bold else ""
        family = "monospace" if line.startswith(("key", "id")) else "Helvetica, Arial"
        text.append(
            f'<text x="{QR_SIZE + 40}" y="{y}" font-size="{size}" font-family="{family}"'
            f"{weight}>{escape(line)}</text>"
        )
        y += size + 14
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W}" height="{LABEL_H}" '
        f'viewBox="0 0 {LABEL_W} {LABEL_H}">\n'
        f'<rect width="{LABEL_W}" height="{LABEL_H}" fill="#fff" stroke="#000" stroke-width="2"/>\n'
        f'<path fill="#000" d="{"".join(cells)}"/>\n' + "\n".join(text) + "\n</svg>\n"
    )


def label_png(key: bytes, site: str, label: str, scale: int = 2):  # -> PIL.Image.Image
    """Return the label as a Pillow image (the same layout as the SVG, `scale` x larger)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (LABEL_W * scale, LABEL_H * scale), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width - 1, img.height - 1], outline="black", width=2 * scale)
    qr = segno.make(qr_payload(key), error="m")
    matrix = list(qr.matrix)
    cell = QR_SIZE * scale // (len(matrix) + 8)
    origin = 20 * scale + 4 * cell
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                x0, y0 = origin + x * cell, origin + y * cell
                draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill="black")
    y = 52 * scale
    for line, size, _bold in _lines(key, site, label):
        font = ImageFont.load_default(size=size * scale)
        draw.text(((QR_SIZE + 40) * scale, y - size * scale), line, fill="black", font=font)
        y += (size + 14) * scale
    return img
