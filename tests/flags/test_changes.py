"""Pushed changes: the server's `changes` event (flags.serving.changes) applied by the client
(flagstaff.changes), on snapshot documents compiled from the database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flags import services
from flags.models import Environment
from flags.serving.changes import changes_event, diff_documents, encode_changes
from flags.snapshots import compile_snapshot
from flagstaff.canonical import canonical_json
from flagstaff.changes import ChangesNotApplicable, apply_changes
from flagstaff.snapshot import Snapshot
from tests.factories import make_environment
from tests.flags.serving_helpers import ACTOR, Served, add_rule, plan_is, served_flag, set_split

pytestmark = pytest.mark.django_db

CONTEXTS: list[dict[str, Any]] = [
    {"targetingKey": f"user-{index}", "plan": plan} for index in range(40) for plan in ("pro", "enterprise")
]


def document(environment: Environment) -> dict[str, Any]:
    return compile_snapshot(Environment.objects.get(pk=environment.pk))


def client_snapshot(document: dict[str, Any]) -> Snapshot:
    return Snapshot.parse(canonical_json(document).encode())


def event_data(event: bytes) -> str:
    """The `data:` line of one encoded event."""
    lines = event.decode().splitlines()
    return next(line.removeprefix("data: ") for line in lines if line.startswith("data: "))


def resolutions(snapshot: Snapshot) -> list[tuple[Any, ...]]:
    from flagstaff.engine import resolve

    answers = []
    for key, flag in sorted(snapshot.flags.items()):
        assert flag.definition is not None
        for context in CONTEXTS:
            resolution = resolve(flag.definition, context)
            content = flag.contents.get(resolution.value_version) if resolution.value_version else None
            answers.append((key, resolution, content))
    return answers


def test_changes__rule_split_and_new_flag__client_rebuilds_the_servers_document(
    production: Environment, chat: Served
) -> None:
    other = served_flag(production, key="other-flag")
    before = document(production)
    add_rule(chat, version=3, constraints=plan_is("enterprise"))
    set_split(chat, weight=2500, candidate=2)
    served_flag(production, key="brand-new")
    services.archive_flag(flag=other.flag, actor=ACTOR)
    after = document(production)
    event = changes_event(before, after)
    assert event is not None

    applied = apply_changes(client_snapshot(before), event_data(event))

    assert canonical_json(applied.document) == canonical_json(after)
    assert applied.revision == after["revision"]
    assert applied.etag == f'"production:{after["revision"]}"'
    assert resolutions(applied) == resolutions(client_snapshot(after))


def test_changes__split_then_new_version__unchanged_flags_shared_and_documents_exact(
    production: Environment, chat: Served
) -> None:
    served_flag(production, key="other-flag")
    served_flag(production, key="third-flag")
    set_split(chat, weight=1000, candidate=2)
    first = document(production)
    set_split(chat, weight=2500, candidate=2)
    second = document(production)
    services.publish_version(flag=chat.flag, environment=production, number=3, actor=ACTOR)
    third = document(production)
    held = client_snapshot(first)
    split, published = changes_event(first, second), changes_event(second, third)
    assert split is not None
    assert published is not None

    after_split = apply_changes(held, event_data(split))
    after_publish = apply_changes(after_split, event_data(published))

    # A split serves the contents it served: the held contents are shared, the flags it left
    # alone are the held snapshot's own compiled flags.
    assert after_split.document["contents"] is held.document["contents"]
    assert after_split.flags["other-flag"] is held.flags["other-flag"]
    assert after_split.flags["support-chat"] is not held.flags["support-chat"]
    assert after_publish.flags["third-flag"] is held.flags["third-flag"]
    assert canonical_json(after_split.document) == canonical_json(second)
    assert canonical_json(after_publish.document) == canonical_json(third)
    assert resolutions(after_publish) == resolutions(client_snapshot(third))


def test_changes__contents_the_client_holds__not_sent_again(production: Environment, chat: Served) -> None:
    set_split(chat, weight=1000, candidate=2)
    before = document(production)
    set_split(chat, weight=5000, candidate=2)

    data = diff_documents(before, document(production))

    assert list(data["flags"]) == ["support-chat"]
    assert data["contents"] == {}


def test_changes__new_version_served__its_content_sent_once(production: Environment, chat: Served) -> None:
    before = document(production)
    services.publish_version(flag=chat.flag, environment=production, number=3, actor=ACTOR)
    served_flag(production, key="same-content")  # v1 content: held already

    data = diff_documents(before, document(production))

    assert set(data["flags"]) == {"support-chat", "same-content"}
    assert list(data["contents"]) == [chat.v3.content_hash]


def test_changes__segment_changed__flags_using_it_resolve_by_the_new_segment(
    production: Environment, chat: Served
) -> None:
    segment = services.create_segment(key="big", name="Big", constraints=plan_is("enterprise"), actor=ACTOR)
    add_rule(chat, version=3, segments=["big"])
    before = document(production)
    services.update_segment(segment=segment, constraints=plan_is("pro"), actor=ACTOR)
    after = document(production)
    event = changes_event(before, after)
    assert event is not None

    applied = apply_changes(client_snapshot(before), event_data(event))

    assert json.loads(event_data(event))["segments"] == {"big": after["segments"]["big"]}
    assert resolutions(applied) == resolutions(client_snapshot(after))


def test_changes__event_from_another_revision__gap(production: Environment, chat: Served) -> None:
    older = document(production)
    set_split(chat, weight=1000, candidate=2)
    before = document(production)
    set_split(chat, weight=2000, candidate=2)
    event = changes_event(before, document(production))
    assert event is not None

    with pytest.raises(ChangesNotApplicable) as raised:
        apply_changes(client_snapshot(older), event_data(event))

    assert raised.value.problem == "gap"


def test_changes__content_neither_held_nor_sent__unknown_hash(production: Environment, chat: Served) -> None:
    before = document(production)
    services.publish_version(flag=chat.flag, environment=production, number=2, actor=ACTOR)
    data = diff_documents(before, document(production))
    data["contents"] = {}

    with pytest.raises(ChangesNotApplicable) as raised:
        apply_changes(client_snapshot(before), event_data(encode_changes(data, data["revision"])))

    assert raised.value.problem == "unknown_hash"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: "not json",
        lambda data: json.dumps([data]),
        lambda data: json.dumps({**data, "environment": "staging"}),
        lambda data: json.dumps({key: value for key, value in data.items() if key != "flags"}),
        lambda data: json.dumps({**data, "flags": {"support-chat": "v2"}}),
        lambda data: json.dumps({**data, "removed": [7]}),
        lambda data: json.dumps({**data, "revision": data["from"]}),
        lambda data: json.dumps({**data, "from": str(data["from"])}),
        lambda data: json.dumps(
            {**data, "flags": {"support-chat": {**data["flags"]["support-chat"], "versions": ["sha256:x"]}}}
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "other-environment",
        "no-flags",
        "entry-not-object",
        "removed-not-keys",
        "not-forward",
        "from-not-int",
        "versions-not-object",
    ],
)
def test_changes__malformed_event__refused_as_malformed(
    production: Environment, chat: Served, mangle: Any
) -> None:
    before = document(production)
    set_split(chat, weight=1000, candidate=2)
    data = diff_documents(before, document(production))

    with pytest.raises(ChangesNotApplicable) as raised:
        apply_changes(client_snapshot(before), mangle(data))

    assert raised.value.problem == "malformed"


def test_changes__documents_of_two_environments__no_patch(production: Environment, chat: Served) -> None:
    staging = make_environment(key="staging")

    assert changes_event(document(production), document(staging)) is None
