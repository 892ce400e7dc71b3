"""Fixtures for the client tests: a fake control plane and clients that are always closed."""

from collections.abc import Iterator
from typing import Any

import pytest

from flagstaff import Flagstaff
from tests.client.fake_controlplane import TOKEN, FakeControlPlane, MakeClient


@pytest.fixture
def controlplane() -> Iterator[FakeControlPlane]:
    with FakeControlPlane() as fake:
        yield fake


@pytest.fixture
def make_client(controlplane: FakeControlPlane) -> Iterator[MakeClient]:
    """Build a Flagstaff aimed at the fake (short intervals); closed at the end of the test."""
    clients: list[Flagstaff] = []

    def make(**overrides: Any) -> Flagstaff:
        options: dict[str, Any] = {
            "url": controlplane.url,
            "token": TOKEN,
            "environment": controlplane.environment,
            "poll_interval": 0.1,
            "timeout": 2.0,
        }
        client = Flagstaff(**(options | overrides))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
