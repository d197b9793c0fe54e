"""The shared test fixtures themselves behave as the tests rely on."""

from __future__ import annotations

import socket


def test_private_mosquitto_stops_and_restarts_on_its_port(mosquitto) -> None:
    socket.create_connection(("127.0.0.1", mosquitto.port), timeout=1).close()
    mosquitto.stop()
    try:
        socket.create_connection(("127.0.0.1", mosquitto.port), timeout=1).close()
        raise AssertionError("broker still accepts connections after stop()")
    except ConnectionRefusedError:
        pass
    mosquitto.start()
    socket.create_connection(("127.0.0.1", mosquitto.port), timeout=1).close()
