"""The box's MQTT client interface (see device/mqtt.py) over aiomqtt, for CPython boxes:
the Raspberry Pi board and `pharmasync device simulate`. CPython only."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import aiomqtt


class AiomqttLink:
    """Same methods and semantics as device.mqtt.MQTTClient; MQTT errors become OSError."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int = 1883,
        *,
        user: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        clean_session: bool = False,
        will: tuple[str, bytes, int, bool] | None = None,
    ) -> None:
        self.on_message: Callable[[str, bytes, bool], Any] | None = None
        self._client = aiomqtt.Client(
            host,
            port,
            username=user,
            password=password,
            identifier=client_id,
            clean_session=clean_session,
            keepalive=keepalive,
            will=aiomqtt.Will(*will) if will else None,
        )
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self.connected = False

    async def connect(self, timeout: float = 10) -> None:
        try:
            async with asyncio.timeout(timeout):  # not wait_for: device/aio.py says why
                await self._client.__aenter__()
        except aiomqtt.MqttError as e:
            raise OSError(f"MQTT connect failed: {e}") from e
        self.connected = True
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self._client.messages:
                if self.on_message is not None:
                    payload = message.payload
                    data = payload if isinstance(payload, bytes) else str(payload).encode()
                    result = self.on_message(str(message.topic), data, bool(message.retain))
                    if inspect.isawaitable(result):
                        await result
        except aiomqtt.MqttError:
            pass  # connection lost: the box's link loop reconnects
        finally:
            self.connected = False
            self._closed.set()

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, timeout: float = 10
    ) -> None:
        try:
            await self._client.publish(topic, payload, qos, retain, timeout=timeout)
        except aiomqtt.MqttError as e:
            raise OSError(f"MQTT publish failed: {e}") from e

    async def subscribe(self, topic: str, qos: int = 1, timeout: float = 10) -> None:
        try:
            await self._client.subscribe(topic, qos, timeout=timeout)
        except aiomqtt.MqttError as e:
            raise OSError(f"MQTT subscribe failed: {e}") from e

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def disconnect(self) -> None:
        with suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        with suppress(Exception):
            self._client._client.disconnect()  # paho: close the socket, no will suppression
        self.connected = False
        self._closed.set()
