"""Fixtures for the fake Anthropic API (demo/fake_anthropic); registered by tests/conftest.py."""

from collections.abc import Iterator

import anthropic
import pytest

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    """One server per session; `fake_anthropic` resets it for each test."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    fake_anthropic_server.reset()
    return fake_anthropic_server


@pytest.fixture
def anthropic_client(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """A real SDK client aimed at the fake; no retries, so error tests see the first failure."""
    with anthropic.Anthropic(
        api_key=DEFAULT_API_KEY, base_url=fake_anthropic.base_url, max_retries=0
    ) as client:
        yield client
