"""Fixtures: a receiver factory (stopped at teardown) on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spanlake.exporter.receiver import Receiver, ReceiverConfig
from spanlake.exporter.store.base import Store

StartReceiver = Callable[..., Receiver]


@pytest.fixture
def start_receiver() -> Iterator[StartReceiver]:
    started: list[Receiver] = []

    def start(store: Store, **config: Any) -> Receiver:
        config.setdefault("grpc_port", 0)
        config.setdefault("http_port", 0)
        config.setdefault("drain_timeout_s", 5.0)
        receiver = Receiver(store, ReceiverConfig(**config)).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
