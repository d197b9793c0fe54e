"""The ESP32 board on MicroPython: DHT22 on a GPIO, Wi-Fi, NTP, RTC memory, deep sleep.

Everything here needs the real chip; tests run the same firmware on device/board_sim.py.
"""

import json
import time

import dht
import machine
import network
import ntptime

# MicroPython on the ESP32 counts time from 2000-01-01; readings carry Unix time.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
_WIFI_TIMEOUT_MS = 15000
_BATTERY_LOW_MV = 3400  # a Li-ion cell below ~3.4 V has little charge left


class _DHT22:
    def __init__(self, pin):
        self.sensor = dht.DHT22(machine.Pin(pin))

    def read(self):
        self.sensor.measure()  # raises OSError on timeout or checksum failure
        return self.sensor.temperature(), self.sensor.humidity()


class Board:
    data_dir = "/data"

    def __init__(self, cfg):
        self.cfg = cfg
        self.wlan = network.WLAN(network.STA_IF)
        self.rtc = machine.RTC()
        self._synced = False
        self._last_ticks = time.ticks_ms()
        self._elapsed_ms = 0
        adc_pin = cfg.get("battery_adc_pin")
        self.adc = None
        if adc_pin is not None:
            self.adc = machine.ADC(machine.Pin(adc_pin))
            self.adc.atten(machine.ADC.ATTN_11DB)
        try:
            import os

            os.mkdir(self.data_dir)
        except OSError:
            pass

    def dht(self, pin):
        return _DHT22(pin)

    def monotonic(self):
        # ticks_ms wraps after ~12 days: accumulate differences instead.
        now = time.ticks_ms()
        self._elapsed_ms += time.ticks_diff(now, self._last_ticks)
        self._last_ticks = now
        return self._elapsed_ms / 1000

    def clock(self):
        if self._synced:
            return time.time() + _EPOCH_OFFSET, True
        return int(self.monotonic()), False

    def battery_low(self):
        if self.adc is None:
            return False
        # A 100k/100k divider halves the cell voltage.
        return self.adc.read_uv() * 2 // 1000 < _BATTERY_LOW_MV

    async def network_up(self):
        import asyncio

        wifi = self.cfg.get("wifi")
        if wifi is None:
            return False
        if not self.wlan.isconnected():
            self.wlan.active(True)
            self.wlan.connect(wifi["ssid"], wifi.get("password", ""))
            start = time.ticks_ms()
            while not self.wlan.isconnected():
                if time.ticks_diff(time.ticks_ms(), start) > _WIFI_TIMEOUT_MS:
                    return False
                await asyncio.sleep_ms(200)
        if not self._synced:
            try:
                ntptime.host = self.cfg.get("ntp_host") or ntptime.host
                ntptime.settime()  # sets the RTC to UTC
                self._synced = True
            except OSError:
                pass  # readings keep the "clock unsynced" flag until NTP answers
        return True

    def network_down(self):
        self.wlan.active(False)

    def mqtt_client(self, *args):
        from device.mqtt import box_client

        return box_client(*args)

    def load_retained(self):
        # RTC memory survives deep sleep but not power loss (then it reads empty).
        try:
            d = json.loads(self.rtc.memory())
        except ValueError:
            return None
        if d.get("synced"):
            self._synced = True  # the RTC keeps UTC across deep sleep
        return d

    def save_retained(self, d):
        d["synced"] = self._synced
        self.rtc.memory(json.dumps(d))

    def deep_sleep(self, seconds):
        machine.deepsleep(int(seconds * 1000))

    def log(self, text):
        print("[box] " + text)
