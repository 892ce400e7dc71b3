"""End to end: a service's Claude calls, made through the client, on the flag's dashboard.

The client resolves the config from the live control plane, calls the fake Messages API with
the real SDK (streaming, so TTFT is measured), and sends telemetry; the dashboard must then
show the cost the catalog's prices give, the cache-hit ratio and the TTFT of those calls.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from controlplane.audit import Actor
from controlplane.models import Role
from controlplane.services import create_api_token
from demo.fake_anthropic import FakeAnthropic
from flags import services
from flags.models import Flag
from flagstaff import Flagstaff
from telemetry.dashboards import Window, flag_dashboard
from telemetry.models import CallRecord
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

ACTOR = Actor.system("tests")
SYSTEM_PROMPT = "You answer questions about parcels. " * 40
CONTENT: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 512,
    "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
}
# claude-sonnet-5-5 in USD per million tokens (flags/data/models.json): micro-USD per token.
PRICES = {"input": Decimal(2), "output": Decimal(10), "write_5m": Decimal("2.5"), "read": Decimal("0.1")}


def expected_cost_micro_usd(usage: Any) -> Decimal:
    return (
        usage.input_tokens * PRICES["input"]
        + usage.output_tokens * PRICES["output"]
        + (usage.cache_creation_input_tokens or 0) * PRICES["write_5m"]
        + (usage.cache_read_input_tokens or 0) * PRICES["read"]
    )


@pytest.fixture
def support_chat() -> Flag:
    # Unprotected: this test is about the client, not about reasons for changes.
    environment = services.create_environment(
        key="production", name="Production", actor=ACTOR, protected=False
    )
    flag = services.create_flag(key="support-chat", name="Support chat", surface="chat", actor=ACTOR)
    services.create_version(flag=flag, content=CONTENT, actor=ACTOR)
    services.publish_version(flag=flag, environment=environment, number=1, actor=ACTOR)
    services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=ACTOR)
    return flag


def test_client_calls__streamed_through_the_fake_api__dashboard_shows_cost_cache_hits_and_ttft(
    live_server: LiveServer, support_chat: Flag, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.05
    token = create_api_token(
        name="checkout",
        scopes=["resolve", "telemetry"],
        environment=support_chat.states.get().environment,
        actor=ACTOR,
    )
    usages = []
    with (
        anthropic.Anthropic(api_key="sk-ant-api03-fake-key", base_url=fake_anthropic.base_url) as sdk,
        Flagstaff(
            url=live_server.url,
            token=token.secret,
            environment="production",
            anthropic_client=sdk,
            telemetry=True,
        ) as client,
    ):
        for question in ("Where is my parcel?", "When does it arrive?"):
            with client.messages.create(
                flag="support-chat",
                context={"targetingKey": "user-7"},
                messages=[{"role": "user", "content": question}],
                stream=True,
            ) as stream:
                for event in stream:
                    if event.type == "message_delta":
                        usages.append(event.usage)
        assert client.telemetry is not None
        assert client.telemetry.flush(timeout=10.0)

    records = list(CallRecord.objects.order_by("timestamp"))
    assert len(records) == 2
    assert all(record.ttft_ms is not None and record.ttft_ms >= 50 for record in records)
    dashboard = flag_dashboard(support_chat, Window.ending(timezone.now(), "24h"))
    total = dashboard.total
    assert total.calls == 2
    expected = sum(expected_cost_micro_usd(usage) for usage in usages)
    assert abs(Decimal(total.total("cost_micro_usd")) - expected) <= 2
    first, second = usages
    assert first.cache_creation_input_tokens > 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    prompt_tokens = sum(
        u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
        for u in usages
    )
    assert total.cache_hit_ratio == pytest.approx(second.cache_read_input_tokens / prompt_tokens)
    slowest_ttft = max(record.ttft_ms or 0 for record in records)
    assert total.p95_ms["ttft"] == pytest.approx(slowest_ttft, rel=0.05)

    viewer = make_user(role=Role.VIEWER, username="reader")
    browser = Client()
    browser.force_login(viewer)
    page = browser.get("/telemetry/flags/support-chat/?range=24h").content.decode()
    assert f"{total.cache_hit_percent:.1f} %" in page
    assert f"{total.cost_usd:.4f}" in page
