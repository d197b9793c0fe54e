"""Battery-life and power estimates for a PharmaSync sensor box (see hardware/README.md, "Power").

    python hardware/battery_life.py

prints the tables used in README.md and writes hardware/battery-life.svg, a bar chart of
days of battery life per configuration. Standard library only.

These are ESTIMATES built from the assumptions below, each with its source or marked as our
own estimate. Nothing here was measured on a PharmaSync box. Confirm the figures by
measuring a real box with a USB power meter (mains) or a uCurrent-type meter in series with
the battery (battery mode), then correct the assumptions here.

Model (battery mode, one cycle = one reading, as device/firmware.py Box.wake() runs it):

    average current = (sleep current x sleep time
                       + charge of one wake (boot, read the DHT22, sign, store)
                       + charge of the radio, shared over the readings between radio wakes)
                      / interval

Three cases per configuration: "best" takes every optimistic value, "worst" every
pessimistic one, "typical" the middle. Battery capacity is derated to 80 % in all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SVG_PATH = HERE / "battery-life.svg"

MICRO = "\u00b5"  # written as an escape: ruff flags a literal micro sign as ambiguous
TIMES = "\u00d7"


@dataclass(frozen=True)
class Assumption:
    """One input of the model: best (least charge), typical and worst (most charge) values."""

    label: str
    best: float
    typical: float
    worst: float
    unit: str
    source: str

    def __post_init__(self) -> None:
        if not self.best <= self.typical <= self.worst:
            raise ValueError(
                f"{self.label}: got {self.best}/{self.typical}/{self.worst}, "
                "want best <= typical <= worst"
            )

    def pick(self, case: str) -> float:
        """Return the value for case 'best', 'typical' or 'worst'."""
        return {"best": self.best, "typical": self.typical, "worst": self.worst}[case]


# --- sleep currents (mA) -------------------------------------------------------------------
SLEEP_LOW_POWER_BOARD = Assumption(
    "ESP32 deep sleep, low-quiescent board (FireBeetle DFR0478 class)",
    0.010, 0.012, 0.025, "mA",
    "Espressif ESP32 datasheet: 10 uA (RTC timer + RTC memory); lucidar.me measured 10 uA "
    "on a FireBeetle DFR0478 and 11.6 uA on a DFR0654 in its low-power mode",
)  # fmt: skip
SLEEP_DEVKITC = Assumption(
    "ESP32 deep sleep, ESP32-DevKitC (LDO, USB-UART, power LED stay on)",
    3.8, 3.8, 11.4, "mA",
    "lucidar.me measured 3.8 mA on an Espressif DevKitC V4; kohacraft.com 11.4 mA on a "
    "DevKitC-compatible board (AMS1117 LDO + CP2102)",
)  # fmt: skip
DHT22_STANDBY = Assumption(
    "DHT22 standby (powered from 3.3 V all the time)",
    0.040, 0.050, 0.050, "mA",
    "Aosong AM2302 datasheet: standby 40-50 uA",
)  # fmt: skip

# --- one wake without radio ----------------------------------------------------------------
AWAKE_S = Assumption(
    "awake per reading: boot, import firmware, build signing table, read, sign, store",
    1.3, 2.0, 3.5, "s",
    "our estimate: stock MicroPython boots from deep sleep to main.py in ~0.64 s "
    "(glenn20/upy-esp32-experiments, ESP32-S3); loading the firmware's modules and rebuilding "
    "the 32 KiB k*G table at every wake (bench: 15.7 ms on a PC, tens of times slower on an "
    "ESP32) is not measured on an ESP32; signing itself takes tens of ms",
)  # fmt: skip
ACTIVE_MA = Assumption(
    "ESP32 active, radio off (80-160 MHz)",
    40, 45, 50, "mA",
    "lucidar.me: 42-43 mA awake on FireBeetle and DevKitC; ESP32 datasheet modem-sleep "
    "figures",
)  # fmt: skip
DHT22_MEASURE_MA = Assumption(
    "DHT22 measuring", 1.0, 1.5, 1.5, "mA", "Aosong AM2302 datasheet: 1-1.5 mA while measuring"
)
DHT22_MEASURE_S = Assumption(
    "DHT22 measurement time", 2.0, 2.0, 2.0, "s", "datasheet: one measurement per 2 s at most"
)

# --- radio ----------------------------------------------------------------------------------
RADIO_S = Assumption(
    "Wi-Fi connect (DHCP) + MQTT connect + publish + acks",
    1.5, 2.5, 3.0, "s",
    "glenn20/upy-esp32-experiments: wake + Wi-Fi/DHCP + HTTP POST 2.9 s, static IP + MQTT "
    "0.77 s (ESP32, MicroPython)",
)  # fmt: skip
RADIO_MA = Assumption(
    "average current while the radio is on",
    120, 140, 160, "mA",
    "same source: 341 mC in 2.9 s = ~117 mA average; ESP32 datasheet TX peaks ~240 mA",
)  # fmt: skip
FAILED_RADIO_S = Assumption(
    "one failed radio attempt during an outage",
    5, 15, 33, "s",
    "device/board_esp32.py gives Wi-Fi 15 s to connect; device/firmware.py gives a flush "
    "max(10 s, ack_timeout_s = 30 s) when the broker answers but no gateway acks",
)  # fmt: skip

# --- mains ----------------------------------------------------------------------------------
MAINS_ESP32_MA = Assumption(
    "ESP32-DevKitC, Wi-Fi and MQTT always connected (at 5 V USB)",
    60, 80, 120, "mA",
    "our estimate: ~43 mA awake without Wi-Fi (lucidar.me) plus Wi-Fi modem-sleep average",
)  # fmt: skip
CHARGER_EFFICIENCY = 0.80  # a small USB wall charger, at light load (our assumption)
USB_VOLTS = 5.0
PI_VOLTS = 5.1
# Raspberry Pi documentation, "Power supply": typical bare-board active current consumption.
PI_BOARDS = (("Raspberry Pi Zero 2 W", 350), ("Raspberry Pi 4", 600), ("Raspberry Pi 5", 800))

# --- batteries and firmware settings --------------------------------------------------------
USABLE_FRACTION = 0.80  # derate: cold, cut-off voltage, ageing, regulator dropout
DIVIDER_OHMS = 200_000  # the optional 100 k + 100 k battery divider on GPIO 35
BACKLOG_SLOTS = 4096  # device/backlog.py
MAX_BACKOFF_S = 3600  # device/config.py max_backoff_s


@dataclass(frozen=True)
class Battery:
    """A battery pack: rated capacity (mAh) and nominal voltage (for the divider's drain)."""

    name: str
    short: str
    capacity_mah: float
    volts: float
    source: str

    @property
    def usable_mah(self) -> float:
        return self.capacity_mah * USABLE_FRACTION


BATTERIES = (
    Battery("18650 Li-ion 3000 mAh", "18650", 3000, 3.7, "e.g. Samsung INR18650-30Q: 3000 mAh"),
    Battery(
        "3 x AA lithium (Energizer L91)",
        "3" + TIMES + "AA",
        3000,
        4.5,
        "Energizer L91 datasheet: ~3000 mAh, nearly independent of load; 1.5 V per cell",
    ),
)


@dataclass(frozen=True)
class Config:
    """A battery-mode configuration of a box."""

    name: str
    interval_s: int = 60
    publish_every: int = 10
    outage: str = ""  # "", "backoff" or "no-backoff"
    devkitc: bool = False
    divider: bool = True

    def __post_init__(self) -> None:
        if self.outage not in ("", "backoff", "no-backoff"):
            raise ValueError(f"outage: got {self.outage!r}, want '', 'backoff' or 'no-backoff'")

    def radio_gap(self) -> int:
        """Return how many readings pass between two radio wakes."""
        if self.outage == "backoff":
            # device/firmware.py Box.wake(): the gap doubles per failed attempt, capped at
            # max_backoff_s // (interval * publish_every) times publish_every; a long outage
            # settles at the cap.
            cap = max(1, MAX_BACKOFF_S // (self.interval_s * self.publish_every))
            return self.publish_every * cap
        return self.publish_every


CONFIGS = (
    Config("publish_every = 1 (radio at every reading)", publish_every=1),
    Config("publish_every = 10 (default)"),
    Config("publish_every = 30", publish_every=30),
    Config("interval 300 s, publish_every = 10", interval_s=300),
    Config("backend outage, backoff up to 60 min", outage="backoff"),
    Config("backend outage, no backoff (for comparison)", outage="no-backoff"),
    Config("ESP32-DevKitC board, publish_every = 10", devkitc=True),
)
CASES = ("best", "typical", "worst")


def average_ma(cfg: Config, battery: Battery, case: str) -> float:
    """Return the box's average current in mA for one configuration, battery and case."""
    board_sleep = (SLEEP_DEVKITC if cfg.devkitc else SLEEP_LOW_POWER_BOARD).pick(case)
    divider_ma = battery.volts / DIVIDER_OHMS * 1000 if cfg.divider else 0.0
    sleep_ma = board_sleep + DHT22_STANDBY.pick(case) + divider_ma

    awake_s = AWAKE_S.pick(case)
    wake_mas = awake_s * ACTIVE_MA.pick(case)
    wake_mas += DHT22_MEASURE_S.pick(case) * DHT22_MEASURE_MA.pick(case)

    # During an outage every radio wake is a failed attempt that runs into a timeout.
    radio_s = FAILED_RADIO_S.pick(case) if cfg.outage else RADIO_S.pick(case)
    radio_mas = radio_s * RADIO_MA.pick(case) / cfg.radio_gap()

    interval = cfg.interval_s
    sleep_s = max(0.0, interval - awake_s - radio_s / cfg.radio_gap())
    return (sleep_ma * sleep_s + wake_mas + radio_mas) / interval


def days(cfg: Config, battery: Battery, case: str) -> float:
    """Return the estimated battery life in days."""
    return battery.usable_mah / average_ma(cfg, battery, case) / 24


def backlog_hours(interval_s: int) -> float:
    """Return how many hours of readings the flash backlog holds at `interval_s`."""
    return BACKLOG_SLOTS * interval_s / 3600


def mains_rows() -> list[tuple[str, float, float]]:
    """Return (board, watts at the board, watts at the wall socket) for mains-powered boxes."""
    rows = []
    ma = MAINS_ESP32_MA.typical
    at_board = ma / 1000 * USB_VOLTS
    rows.append(("ESP32-DevKitC (mains mode)", at_board, at_board / CHARGER_EFFICIENCY))
    for name, pi_ma in PI_BOARDS:
        at_board = pi_ma / 1000 * PI_VOLTS
        rows.append((name, at_board, at_board / CHARGER_EFFICIENCY))
    return rows


def _fmt_days(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def battery_table() -> list[str]:
    """Return the battery-mode table as Markdown lines."""
    head = "| configuration | average current, typical |"
    rule = "| --- | ---: |"
    for b in BATTERIES:
        head += f" {b.short}: days, typical (range) |"
        rule += " ---: |"
    lines = [head, rule]
    for cfg in CONFIGS:
        ref = BATTERIES[0]
        row = f"| {cfg.name} | {average_ma(cfg, ref, 'typical'):.2f} mA |"
        for b in BATTERIES:
            t, lo, hi = (days(cfg, b, c) for c in ("typical", "worst", "best"))
            row += f" **{_fmt_days(t)}** ({_fmt_days(lo)}-{_fmt_days(hi)}) |"
        lines.append(row)
    return lines


def mains_table() -> list[str]:
    """Return the mains-power table as Markdown lines."""
    lines = [
        "| box | power at the board | at the wall (80 % charger) | energy per year |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, board_w, wall_w in mains_rows():
        kwh = wall_w * 24 * 365 / 1000
        lines.append(f"| {name} | {board_w:.2f} W | {wall_w:.2f} W | {kwh:.1f} kWh |")
    return lines


def assumption_table() -> list[str]:
    """Return the model's inputs as Markdown lines."""
    lines = [
        "| input | best | typical | worst | unit | source |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    inputs = (
        SLEEP_LOW_POWER_BOARD,
        SLEEP_DEVKITC,
        DHT22_STANDBY,
        AWAKE_S,
        ACTIVE_MA,
        DHT22_MEASURE_MA,
        RADIO_S,
        RADIO_MA,
        FAILED_RADIO_S,
        MAINS_ESP32_MA,
    )
    for a in inputs:
        lines.append(
            f"| {a.label} | {a.best:g} | {a.typical:g} | {a.worst:g} | {a.unit} | {a.source} |"
        )
    return lines


# --- the SVG chart --------------------------------------------------------------------------
BAR_COLOURS = ("#1e6fb8", "#2e8b57")  # one per battery, in BATTERIES order
FONT = "Helvetica, Arial, sans-serif"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chart_svg() -> str:
    """Return a horizontal grouped bar chart (typical days, whiskers for best..worst)."""
    label_w = 330  # room for the configuration names
    plot_w = 520
    left = 20 + label_w
    top = 96
    bar_h = 16
    group_h = 2 * bar_h + 22
    n = len(CONFIGS)
    plot_h = n * group_h
    height = top + plot_h + 92
    width = left + plot_w + 70

    best_max = max(days(c, b, "best") for c in CONFIGS for b in BATTERIES)
    # At most about ten grid lines, on round numbers of days.
    step = next(s for s in (10, 20, 25, 50, 100, 200, 500) if best_max / s <= 10)
    axis_max = step * (int(best_max // step) + 1)

    def x(value: float) -> float:
        return left + plot_w * min(value, axis_max) / axis_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'font-family="{FONT}" font-size="13">',
        "  <title>Estimated battery life of a PharmaSync ESP32 box per configuration</title>",
        f'  <rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        '  <text x="20" y="30" font-size="18" font-weight="bold">Estimated battery life, '
        "ESP32 box in battery mode (days)</text>",
        '  <text x="20" y="52" fill="#455a64">DHT22 read every 60 s unless stated; bar = '
        "typical, whisker = best to worst case; 80 % of rated capacity used.</text>",
    ]
    # legend
    lx = 20
    for colour, b in zip(BAR_COLOURS, BATTERIES, strict=True):
        out.append(f'  <rect x="{lx}" y="64" width="14" height="14" fill="{colour}"/>')
        out.append(f'  <text x="{lx + 20}" y="76">{_esc(b.name)}</text>')
        lx += 20 + 9 * len(b.name) + 40
    # grid and axis
    for v in range(0, axis_max + 1, step):
        gx = x(v)
        out.append(
            f'  <line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{top + plot_h}" '
            'stroke="#cfd8dc" stroke-width="1"/>'
        )
        out.append(
            f'  <text x="{gx:.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
            f'fill="#455a64">{v}</text>'
        )
    out.append(
        f'  <text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 40}" text-anchor="middle" '
        'fill="#263238">days on one battery (estimate)</text>'
    )
    # bars
    for i, cfg in enumerate(CONFIGS):
        gy = top + i * group_h
        if i % 2 == 1:
            out.append(
                f'  <rect x="10" y="{gy - 4}" width="{width - 20}" height="{group_h - 2}" '
                'fill="#f5f7f8"/>'
            )
        weight = ' font-weight="bold"' if cfg.name.endswith("(default)") else ""
        out.append(
            f'  <text x="{left - 12}" y="{gy + bar_h + 6}" text-anchor="end"{weight}>'
            f"{_esc(cfg.name)}</text>"
        )
        for j, (colour, b) in enumerate(zip(BAR_COLOURS, BATTERIES, strict=True)):
            y = gy + j * (bar_h + 2)
            typical, worst, best = (days(cfg, b, c) for c in ("typical", "worst", "best"))
            out.append(
                f'  <rect x="{left}" y="{y}" width="{x(typical) - left:.1f}" height="{bar_h}" '
                f'fill="{colour}"/>'
            )
            wy = y + bar_h / 2
            out.append(
                f'  <line x1="{x(worst):.1f}" y1="{wy}" x2="{x(best):.1f}" y2="{wy}" '
                'stroke="#263238" stroke-width="1.5"/>'
            )
            for end in (worst, best):
                out.append(
                    f'  <line x1="{x(end):.1f}" y1="{y + 3}" x2="{x(end):.1f}" '
                    f'y2="{y + bar_h - 3}" stroke="#263238" stroke-width="1.5"/>'
                )
            out.append(
                f'  <text x="{x(best) + 6:.1f}" y="{y + bar_h - 3}" font-size="12" '
                f'fill="#263238">{_fmt_days(typical)} d</text>'
            )
    out.append(
        f'  <line x1="{left}" y1="{top - 6}" x2="{left}" y2="{top + plot_h}" '
        'stroke="#37474f" stroke-width="1.5"/>'
    )
    foot = top + plot_h + 64
    out.append(
        f'  <text x="20" y="{foot}" font-size="12" fill="#b23b00">Estimates from '
        "hardware/battery_life.py, not measurements: confirm on a real box with a USB power "
        f"meter or a {MICRO}Current-type meter.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    print("PharmaSync sensor box: power and battery-life ESTIMATES (not measurements)\n")
    print("Inputs:\n")
    print("\n".join(assumption_table()))
    print("\nMains power:\n")
    print("\n".join(mains_table()))
    print("\nBattery mode, ESP32 (low-quiescent board unless stated, battery divider fitted):\n")
    print("\n".join(battery_table()))
    print(
        f"\nThe flash backlog holds {BACKLOG_SLOTS} readings: "
        f"{backlog_hours(60):.0f} h at 60 s, {backlog_hours(300) / 24:.1f} days at 300 s."
    )
    SVG_PATH.write_text(chart_svg())
    print(f"\nwrote {SVG_PATH}")


if __name__ == "__main__":
    main()
