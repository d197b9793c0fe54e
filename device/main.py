"""Boot entry of a PharmaSync box on an ESP32: `pharmasync device flash` writes a /main.py
that imports this module. Reads /config.json and /secret.key, then runs for ever."""

import asyncio

from device import boot


def main():
    cfg, secret = boot.identity("/config.json", "/secret.key")  # a bad config stops here
    from device import firmware
    from device.board_esp32 import Board

    board = Board(cfg)
    box = firmware.Box(board, cfg, secret)
    if cfg["power"] == "battery":
        board.deep_sleep(asyncio.run(box.wake()))  # BLE stays off: it would drain the cell
    else:
        asyncio.run(run_mains(box, cfg["ble"]))


async def run_mains(box, ble_on):
    if ble_on:
        try:
            from device import ble

            asyncio.create_task(ble.serve(box))
        except ImportError:
            box.board.log("BLE off: aioble is not installed (pharmasync device flash installs it)")
    await box.run()


main()
