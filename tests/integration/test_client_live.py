"""The `flagstaff` client against the real control plane on a live server.

The flags are set up through the services, as the UI and API would; the client then talks to
the real snapshot, change-stream and telemetry endpoints over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from django.test import override_settings
from pytest_django.live_server_helper import LiveServer
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.services import IssuedToken, create_api_token
from demo.fake_anthropic import FakeAnthropic
from flags import services
from flags.models import Environment, Flag
from flagstaff import Flagstaff
from telemetry.models import CallRecord
from tests.flags.serving_helpers import fresh_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store", "fast_stream")]
__all__ = ["fresh_store"]

ACTOR = Actor.system("tests")
CONTENT: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 1024,
    "cache_control": {"type": "ephemeral"},
}
HELLO: Any = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def fast_stream() -> Iterator[None]:
    with override_settings(FLAGSTAFF_STREAM_KEEPALIVE_SECONDS=0.2, FLAGSTAFF_STREAM_MAX_SECONDS=30):
        yield


@pytest.fixture
def production() -> Environment:
    # Unprotected: these tests are about the client, not about reasons for changes.
    return services.create_environment(key="production", name="Production", actor=ACTOR, protected=False)


@pytest.fixture
def chat(production: Environment) -> Flag:
    """support-chat with v1 served in production, and v2 (max_tokens 2048) ready to publish."""
    flag = services.create_flag(key="support-chat", name="", surface="chat", actor=ACTOR)
    services.create_version(flag=flag, content=dict(CONTENT), message="", actor=ACTOR)
    services.create_version(flag=flag, content=CONTENT | {"max_tokens": 2048}, message="", actor=ACTOR)
    services.publish_version(flag=flag, environment=production, number=1, actor=ACTOR)
    services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=ACTOR)
    return flag


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return create_api_token(
        name="checkout-service", scopes=["resolve", "telemetry"], environment=production, actor=ACTOR
    )


@pytest.fixture
def client(live_server: LiveServer, token: IssuedToken, chat: Flag, tmp_path: Path) -> Iterator[Flagstaff]:
    # A long poll interval: within these tests only the change stream can bring news.
    with Flagstaff(
        url=live_server.url,
        token=token.secret,
        environment="production",
        cache_path=tmp_path / "production.json",
        poll_interval=60.0,
    ) as flagstaff:
        yield flagstaff


def revision_of(environment: Environment) -> int:
    return Environment.objects.get(pk=environment.pk).revision


def test_client__live_server__resolves_the_published_version(
    client: Flagstaff, production: Environment, tmp_path: Path
) -> None:
    resolved = client.resolve("support-chat", {"targetingKey": "user-1"})

    assert (resolved.version, resolved.reason, resolved.variant) == (1, "STATIC", "v1")
    assert resolved.content == CONTENT
    assert resolved.flag_state == f"fs1:production:support-chat:1:-:-:{revision_of(production)}"
    assert (tmp_path / "production.json").exists()


def test_client__serving_version_changed__picked_up_through_the_stream(
    client: Flagstaff, chat: Flag, production: Environment
) -> None:
    services.publish_version(flag=chat, environment=production, number=2, actor=ACTOR)

    assert client.wait_for_revision(revision_of(production), timeout=5.0)
    resolved = client.resolve("support-chat", {"targetingKey": "user-1"})
    assert (resolved.version, resolved.reason) == (2, "STATIC")
    assert resolved.content == CONTENT | {"max_tokens": 2048}


def test_client__split__same_answers_as_the_resolve_api(
    client: Flagstaff, chat: Flag, production: Environment, token: IssuedToken
) -> None:
    services.set_split(flag=chat, environment=production, candidate=2, weight=3000, actor=ACTOR)
    assert client.wait_for_revision(revision_of(production), timeout=5.0)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.secret}")

    for unit in (f"user-{n}" for n in range(20)):
        local = client.resolve("support-chat", {"targetingKey": unit})
        remote = api.post(
            "/api/v1/resolve", {"flag": "support-chat", "context": {"targetingKey": unit}}, format="json"
        ).json()
        assert (local.version, local.reason, local.arm) == (
            remote["metadata"]["version"],
            remote["reason"],
            remote["metadata"]["arm"],
        )
        assert local.flag_state == remote["flag_state"]


def test_messages_create__live_server__call_stored_and_attributed(
    live_server: LiveServer, token: IssuedToken, chat: Flag, fake_anthropic: FakeAnthropic
) -> None:
    with (
        anthropic.Anthropic(
            api_key="sk-ant-api03-fake-key", base_url=fake_anthropic.base_url, max_retries=0
        ) as sdk,
        Flagstaff(
            url=live_server.url,
            token=token.secret,
            environment="production",
            anthropic_client=sdk,
            telemetry=True,
        ) as client,
    ):
        message = client.messages.create(
            flag="support-chat", context={"targetingKey": "user-1"}, messages=HELLO
        )
        assert client.telemetry is not None
        assert client.telemetry.flush(timeout=5.0)
        stats = client.telemetry.stats()

    assert (stats.sent, stats.rejected, stats.dropped) == (1, 0, 0)
    record = CallRecord.objects.get(request_id=message._request_id)
    assert (record.flag_id, record.version, record.model) == (chat.pk, 1, "claude-sonnet-5-5")
    assert record.attributed
    assert record.output_tokens == message.usage.output_tokens
