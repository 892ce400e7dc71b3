"""Builders and fixtures shared by the serving tests (snapshots, resolve, OFREP, stream, the WSGI
fast path)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from controlplane.audit import Actor
from controlplane.services import IssuedToken
from flags import services
from flags.models import ConfigVersion, Environment, Flag, Split
from flags.snapshots import reset_store
from flagstaff.engine import bucket
from tests.factories import VALID_CONTENT, make_flag, make_token, make_version

ACTOR = Actor.system("tests")
V2_CONTENT: dict[str, Any] = {**VALID_CONTENT, "max_tokens": 2048}
V3_CONTENT: dict[str, Any] = {**VALID_CONTENT, "max_tokens": 512}


@pytest.fixture
def fresh_store() -> Iterator[None]:
    """Each test starts with an empty process store that checks the revision on every read.

    Tests run inside one transaction whose on-commit announcements never fire, so the store
    must notice writes by checking; the tests of caching build their own stores.
    """
    reset_store()
    with override_settings(FLAGSTAFF_REVISION_CHECK_SECONDS=0, FLAGSTAFF_REVISION_RECHECK_SECONDS=0):
        yield
    reset_store()


@dataclass
class Served:
    environment: Environment
    flag: Flag
    v1: ConfigVersion
    v2: ConfigVersion
    v3: ConfigVersion


def served_flag(environment: Environment, *, enabled: bool = True, **flag_fields: Any) -> Served:
    """A flag with v1 published (and enabled) in `environment`, and unpublished v2 and v3."""
    flag = make_flag(**flag_fields)
    v1 = make_version(flag=flag)
    v2 = make_version(flag=flag, content=dict(V2_CONTENT))
    v3 = make_version(flag=flag, content=dict(V3_CONTENT))
    services.publish_version(flag=flag, environment=environment, number=1, actor=ACTOR)
    if enabled:
        services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=ACTOR)
    return Served(environment, flag, v1, v2, v3)


def add_rule(served: Served, *, version: int = 3, constraints: Any = None, segments: Any = None) -> None:
    services.add_rule(
        flag=served.flag,
        environment=served.environment,
        constraints=constraints if constraints is not None else [],
        segments=segments or [],
        version=version,
        description="",
        actor=ACTOR,
    )


def plan_is(value: str) -> list[dict[str, Any]]:
    return [{"contextName": "plan", "operator": "IN", "values": [value]}]


def set_split(served: Served, *, weight: int = 1000, candidate: int = 2) -> Split:
    return services.set_split(
        flag=served.flag, environment=served.environment, candidate=candidate, weight=weight, actor=ACTOR
    )


def unit_in(split: Split, *, low: int, high: int) -> str:
    """A unit whose bucket in the split is in [low, high)."""
    for index in range(100_000):
        unit = f"user-{index}"
        if low <= bucket(split.seed, unit) < high:
            return unit
    raise AssertionError("no unit found in the band")


def every_outcome(served: Served) -> list[dict[str, Any]]:
    """Adds a rule (plan enterprise -> v3) and a 10 % split of v2; one context per outcome: the
    candidate, control and baseline bands (two baseline units), the rule, no unit."""
    add_rule(served, version=3, constraints=plan_is("enterprise"))
    split = set_split(served, weight=1000, candidate=2)
    return [
        {"targetingKey": unit_in(split, low=0, high=1000)},
        {"targetingKey": unit_in(split, low=1000, high=2000)},
        {"targetingKey": unit_in(split, low=2000, high=10_000)},
        {"targetingKey": unit_in(split, low=3000, high=10_000)},
        {"targetingKey": unit_in(split, low=0, high=1000), "plan": "enterprise"},
        {},
    ]


def resolve_token(environment: Environment | None = None, **overrides: Any) -> IssuedToken:
    return make_token(scopes=["resolve"], environment=environment, **overrides)


def redis_configured() -> bool:
    return bool(settings.REDIS_URL)


# A WSGI answer: status, headers, body.
Answer = tuple[str, list[tuple[str, str]], bytes]


def environ_for(
    path: str, body: Any, token: IssuedToken | None, *, method: str = "POST", **extra: Any
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token.secret}"
    environ.update(extra)
    return environ


def call(app: Any, environ: dict[str, Any]) -> Answer:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.extend([status, headers])

    body = app(environ, start_response)
    try:
        content = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return started[0], started[1], content
