import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from flags import services
from flags.models import Environment, Flag, Segment
from flags.services.splits import ArmSpec, set_experiment_split
from flags.snapshots import (
    RedisLink,
    Snapshot,
    SnapshotStore,
    SnapshotUnavailable,
    UnknownEnvironment,
    UnknownFlag,
    UnservableFlag,
    compile_snapshot,
    environment_fingerprint,
    get_store,
    redis_link,
    reset_store,
    snapshot_key,
)
from flagstaff.canonical import canonical_json
from tests.factories import make_environment, make_version
from tests.flags.serving_helpers import (
    ACTOR,
    Served,
    add_rule,
    fresh_store,
    plan_is,
    served_flag,
    set_split,
    unit_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_store")]
__all__ = ["fresh_store"]
needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL (the PostgreSQL + Redis pass)"
)


def reloaded(environment: Environment) -> Environment:
    return Environment.objects.get(pk=environment.pk)


@pytest.fixture
def stores() -> Iterator[list[SnapshotStore]]:
    """Stores built by a test; their listener threads are stopped afterwards."""
    made: list[SnapshotStore] = []
    yield made
    for store in made:
        store.close()


@pytest.fixture
def make_store(stores: list[SnapshotStore]) -> Callable[..., SnapshotStore]:
    def make(**options: Any) -> SnapshotStore:
        store = SnapshotStore(**options)
        stores.append(store)
        return store

    return make


# compile_snapshot


def test_compile_snapshot__rules_split_and_segment__document_in_the_documented_shape(
    production: Environment, chat: Served
) -> None:
    services.create_segment(key="beta-testers", name="", constraints=plan_is("beta"), actor=ACTOR)
    add_rule(chat, version=3, constraints=plan_is("enterprise"), segments=["beta-testers"])
    split = set_split(chat, weight=1000, candidate=2)

    document = compile_snapshot(reloaded(production))

    assert document["generated_at"].endswith("Z")
    del document["generated_at"]
    assert document == {
        "format": 1,
        "environment": "production",
        "revision": reloaded(production).revision,
        "segments": {"beta-testers": {"constraints": plan_is("beta")}},
        "flags": {
            "support-chat": {
                "key": "support-chat",
                "enabled": True,
                "version": 1,
                "stickiness": "targetingKey",
                "surface": "chat",
                "rules": [{"constraints": plan_is("enterprise"), "segments": ["beta-testers"], "version": 3}],
                "rollout": {"id": split.split_id, "seed": split.seed, "candidate": 2, "weight": 1000},
                "experiment": None,
                "versions": {
                    "1": chat.v1.content_hash,
                    "2": chat.v2.content_hash,
                    "3": chat.v3.content_hash,
                },
            }
        },
        "contents": {
            chat.v1.content_hash: chat.v1.content,
            chat.v2.content_hash: chat.v2.content,
            chat.v3.content_hash: chat.v3.content,
        },
    }


def test_compile_snapshot__archived_and_disabled_flags__only_the_disabled_one_listed(
    production: Environment,
) -> None:
    disabled = served_flag(production, key="disabled", enabled=False)
    archived = served_flag(production, key="archived")
    services.archive_flag(flag=archived.flag, actor=ACTOR)

    flags = compile_snapshot(reloaded(production))["flags"]

    assert list(flags) == ["disabled"]
    assert (flags["disabled"]["enabled"], flags["disabled"]["version"]) == (False, disabled.v1.number)


def test_compile_snapshot__two_flags_same_content__content_stored_once(production: Environment) -> None:
    first = served_flag(production)
    second = served_flag(production)

    document = compile_snapshot(reloaded(production))

    assert first.v1.content_hash == second.v1.content_hash
    assert list(document["contents"]) == [first.v1.content_hash]


def test_compile_snapshot__other_environment__not_included(production: Environment) -> None:
    served_flag(make_environment(key="staging"), key="staging-only")

    assert compile_snapshot(reloaded(production))["flags"] == {}


def test_compile_snapshot__more_flags__same_number_of_queries(production: Environment) -> None:
    services.create_segment(key="beta", name="", constraints=plan_is("beta"), actor=ACTOR)

    def add_flags(count: int) -> None:
        for _ in range(count):
            served = served_flag(production)
            add_rule(served, version=3, segments=["beta"])
            set_split(served)

    add_flags(1)
    environment = reloaded(production)
    with CaptureQueriesContext(connection) as one_flag:
        compile_snapshot(environment)
    add_flags(9)
    environment = reloaded(production)
    with CaptureQueriesContext(connection) as ten_flags:
        document = compile_snapshot(environment)

    assert len(document["flags"]) == 10
    # revision, states, splits, rule versions, contents, segments; and a savepoint's two.
    assert len(ten_flags.captured_queries) == len(one_flag.captured_queries) == 8


# Snapshot (compiled)


def test_snapshot_from_document__body_and_etag__canonical_json_and_env_revision(
    production: Environment, chat: Served
) -> None:
    document = compile_snapshot(reloaded(production))

    snapshot = Snapshot.from_document(document, fingerprint="f")

    assert snapshot.body == canonical_json(document).encode()
    assert snapshot.etag == f'"production:{document["revision"]}"'


def test_snapshot_resolve__unit_in_candidate_band__candidate_with_flag_state(
    production: Environment, chat: Served
) -> None:
    split = set_split(chat, weight=1000, candidate=2)
    snapshot = Snapshot.from_document(compile_snapshot(reloaded(production)), fingerprint="f")

    served = snapshot.resolve("support-chat", {"targetingKey": unit_in(split, low=0, high=1000)})

    revision = reloaded(production).revision
    assert (served.resolution.reason, served.resolution.arm, served.version and served.version.content) == (
        "SPLIT",
        "candidate",
        chat.v2.content,
    )
    assert served.flag_state == f"fs1:production:support-chat:2:candidate:{split.split_id}:{revision}"
    assert served.metadata() == {
        "version": 2,
        "content_hash": chat.v2.content_hash,
        "arm": "candidate",
        "split_id": split.split_id,
        "rule_index": None,
        "revision": revision,
        "environment": "production",
    }


def test_snapshot_resolve__mcp_secret__request_holds_a_placeholder_not_the_secret(
    production: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCS_MCP_TOKEN", "real-secret-value")
    flag = Flag.objects.get(pk=served_flag(production, key="agent").flag.pk)
    content = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "cache_control": {"type": "ephemeral"},
        "mcp_servers": [
            {
                "type": "url",
                "name": "docs",
                "url": "https://mcp.example.com",
                "authorization_secret": "DOCS_MCP_TOKEN",
            }
        ],
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}],
    }
    make_version(flag=flag, content=content)
    services.publish_version(flag=flag, environment=production, number=4, actor=ACTOR)
    snapshot = Snapshot.from_document(compile_snapshot(reloaded(production)), fingerprint="f")

    version = snapshot.resolve("agent", {}).version

    assert version is not None
    assert version.request is not None
    assert version.request["mcp_servers"][0]["authorization_token"] == "<secret:DOCS_MCP_TOKEN>"
    assert "real-secret-value" not in canonical_json(version.request)
    assert version.beta is True


def test_snapshot_resolve__unknown_flag__unknown_flag_error(production: Environment) -> None:
    snapshot = Snapshot.from_document(compile_snapshot(reloaded(production)), fingerprint="f")

    with pytest.raises(UnknownFlag):
        snapshot.resolve("nope", {})


def test_snapshot_from_document__one_broken_flag__fails_alone(production: Environment, chat: Served) -> None:
    document = compile_snapshot(reloaded(production))
    document["flags"]["broken"] = {**document["flags"]["support-chat"], "key": "broken", "rules": "nope"}

    snapshot = Snapshot.from_document(document, fingerprint="f")

    assert snapshot.resolve("support-chat", {}).resolution.reason == "STATIC"
    with pytest.raises(UnservableFlag):
        snapshot.resolve("broken", {})


# SnapshotStore: caching


def test_store_get__warm__no_query_for_get_and_resolve(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    django_assert_num_queries: Any,
) -> None:
    store = make_store(redis_url="", check_seconds=3600, recheck_seconds=3600)
    store.get("production")

    with django_assert_num_queries(0):
        served = store.get("production").resolve("support-chat", {"targetingKey": "u1"})

    assert served.resolution.reason == "STATIC"


def test_store_get__warm__same_compiled_objects_every_time(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    store = make_store(redis_url="", check_seconds=3600, recheck_seconds=3600)

    first, second = store.get("production"), store.get("production")

    assert first is second
    assert first.flags["support-chat"].definition is second.flags["support-chat"].definition


def test_store_get__bump_within_check_interval__previous_snapshot_served(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    store = make_store(redis_url="", check_seconds=3600, recheck_seconds=3600)
    before = store.get("production").revision

    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    assert store.get("production").revision == before


def test_store_get__bump_after_check_interval__new_revision_with_one_check(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    store = make_store(redis_url="", check_seconds=0.05, recheck_seconds=0.05)
    store.get("production")
    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)
    time.sleep(0.06)

    snapshot = store.get("production")

    assert snapshot.revision == reloaded(production).revision
    assert snapshot.resolve("support-chat", {}).resolution.reason == "DISABLED"


def test_store_get__unchanged_after_check_interval__one_revision_query_no_compile(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    django_assert_num_queries: Any,
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    first = store.get("production")

    with django_assert_num_queries(1):
        second = store.get("production")

    assert second is first


def test_store_get__unknown_environment__unknown_environment_error(
    make_store: Callable[..., SnapshotStore],
) -> None:
    with pytest.raises(UnknownEnvironment):
        make_store(redis_url="").get("nowhere")


def test_store_get__announced_revision__refreshes_without_waiting_for_a_check(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    store = make_store(redis_url="", check_seconds=3600, recheck_seconds=3600)
    store.get("production")
    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    store.note_revision("production", reloaded(production).revision)

    assert store.get("production").revision == reloaded(production).revision


def test_store_get__announced_revision_the_database_lacks__not_stale_afterwards(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    django_assert_num_queries: Any,
) -> None:
    store = make_store(redis_url="", check_seconds=3600, recheck_seconds=3600)
    store.get("production")
    store.note_revision("production", 10_000)
    store.get("production")

    with django_assert_num_queries(0):
        snapshot = store.get("production")

    assert snapshot.revision == reloaded(production).revision


def test_announce__write_committed__process_store_refreshes_at_once(
    production: Environment, chat: Served, django_capture_on_commit_callbacks: Any
) -> None:
    reset_store()
    with override_settings(FLAGSTAFF_REVISION_CHECK_SECONDS=3600, FLAGSTAFF_REVISION_RECHECK_SECONDS=3600):
        store = get_store()
        store.get("production")
        with django_capture_on_commit_callbacks(execute=True):
            services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

        assert store.get("production").revision == reloaded(production).revision


def test_store_get__environment_recreated_with_same_key__new_rows_served(
    make_store: Callable[..., SnapshotStore],
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    old = make_environment(key="qa")
    served_flag(old, key="old-flag")
    store.get("qa")
    Environment.objects.filter(pk=old.pk).update(key="qa-old")
    new = make_environment(key="qa")
    served_flag(new, key="new-flag")
    Environment.objects.filter(pk=new.pk).update(revision=0)

    assert list(store.get("qa").flags) == ["new-flag"]


# SnapshotStore: invalidation by every kind of write, seen by another process's store


def _nothing(served: Served) -> None:
    pass


def _with_segment(served: Served) -> None:
    services.create_segment(key="beta", name="", constraints=plan_is("beta"), actor=ACTOR)
    add_rule(served, version=3, segments=["beta"])


def _edit_segment(served: Served) -> None:
    segment = Segment.objects.get(key="beta")
    services.update_segment(segment=segment, constraints=plan_is("gamma"), actor=ACTOR)


def _with_two_rules(served: Served) -> None:
    add_rule(served, version=2, constraints=plan_is("a"))
    add_rule(served, version=3, constraints=plan_is("b"))


def _with_split(served: Served) -> None:
    set_split(served, weight=100)


def _rule_change(change: Callable[..., object], **fields: Any) -> Callable[[Served], object]:
    return lambda s: change(flag=s.flag, environment=s.environment, actor=ACTOR, **fields)


# name: (set-up before the other process reads, the write under test)
WRITES: dict[str, tuple[Callable[[Served], object], Callable[[Served], object]]] = {
    "publish": (_nothing, _rule_change(services.publish_version, number=2)),
    "disable": (_nothing, _rule_change(services.set_flag_enabled, enabled=False)),
    "stickiness": (
        _nothing,
        lambda s: services.update_flag(flag=s.flag, changes={"stickiness": "id"}, actor=ACTOR),
    ),
    "archive": (_nothing, lambda s: services.archive_flag(flag=s.flag, actor=ACTOR)),
    "add_rule": (_nothing, lambda s: add_rule(s, version=3, constraints=plan_is("a"))),
    "update_rule": (_with_two_rules, _rule_change(services.update_rule, index=0, version=3)),
    "move_rule": (_with_two_rules, _rule_change(services.move_rule, index=1, to_index=0)),
    "remove_rule": (_with_two_rules, _rule_change(services.remove_rule, index=0)),
    "segment_edit": (_with_segment, _edit_segment),
    "set_split": (_nothing, set_split),
    "split_weight": (_with_split, lambda s: set_split(s, weight=500)),
    "clear_split": (_with_split, _rule_change(services.clear_split)),
}


def content_of(snapshot: Snapshot) -> dict[str, Any]:
    return {"segments": snapshot.document["segments"], "flags": snapshot.document["flags"]}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_store_get__any_resolution_change__other_process_store_sees_the_new_document(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore], write: str
) -> None:
    set_up, change = WRITES[write]
    set_up(chat)
    this_process = make_store(check_seconds=0, recheck_seconds=0)
    other_process = make_store(check_seconds=0, recheck_seconds=0)
    before = other_process.get("production")
    this_process.get("production")

    change(chat)

    after = other_process.get("production")
    assert after.revision > before.revision
    assert content_of(after) != content_of(before)
    assert after.document == {
        **compile_snapshot(reloaded(production)),
        "generated_at": after.document["generated_at"],
    }


@needs_redis
def test_store_get__write_announced_through_redis__other_store_refreshes_without_checks(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    django_capture_on_commit_callbacks: Any,
) -> None:
    other_process = make_store(check_seconds=3600, recheck_seconds=3600)
    before = other_process.get("production")
    wait_until(lambda: other_process.listening)
    other_process.get("production")

    with django_capture_on_commit_callbacks(execute=True):
        services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    wait_until(lambda: other_process.get("production").revision > before.revision)
    assert other_process.get("production").resolve("support-chat", {}).resolution.reason == "DISABLED"


@needs_redis
def test_store_get__fresh_process__loads_the_cached_document_without_compiling(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    django_assert_num_queries: Any,
) -> None:
    first = make_store().get("production")

    with django_assert_num_queries(1):  # the revision check, not the compile
        second = make_store().get("production")

    assert (second.revision, second.body) == (first.revision, first.body)


@needs_redis
def test_store_get__cached_document_of_another_environment_row__ignored(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    revision = reloaded(production).revision
    link = redis_link()
    assert link is not None
    link.set_many({snapshot_key("production", revision): b"1.2\n{}"}, seconds=60)

    snapshot = make_store().get("production")

    assert snapshot.fingerprint == environment_fingerprint(production)
    assert list(snapshot.flags) == ["support-chat"]


@needs_redis
def test_redis_link__listener_subscribed__channel_has_a_subscriber(
    make_store: Callable[..., SnapshotStore], production: Environment
) -> None:
    store = make_store()
    store.get("production")
    wait_until(lambda: store.listening)

    link = redis_link()
    assert link is not None
    assert dict(link.client.pubsub_numsub(link.channel))[link.channel.encode()] >= 1


def test_redis_link__channel__named_after_the_database_number() -> None:
    # Pub/sub is server-wide: deployments on databases 3 and 4 of one server must not share it.
    channels = {RedisLink(f"redis://127.0.0.1:6379/{db}").channel for db in (3, 4)}
    assert channels == {"flagstaff:revisions:3", "flagstaff:revisions:4"}
    assert RedisLink("redis://127.0.0.1:6379").channel == "flagstaff:revisions:0"


@needs_redis
def test_redis_link__marked_down_by_a_blip__listener_marks_it_up_again(
    make_store: Callable[..., SnapshotStore], production: Environment
) -> None:
    store = make_store()
    store.get("production")
    wait_until(lambda: store.listening)
    link = redis_link()
    assert link is not None

    link.mark_down(TimeoutError("a cache read timed out"))

    wait_until(lambda: not link.down)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# SnapshotStore: database outage


def test_store_get__database_error__last_snapshot_served(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    warm = store.get("production")

    def unreachable(environment: str) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(store, "_database_revision", unreachable)

    assert store.get("production") is warm


def test_store_get__database_error_and_nothing_cached__unavailable(
    production: Environment, make_store: Callable[..., SnapshotStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)

    def unreachable(environment: str) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(store, "_database_revision", unreachable)

    with pytest.raises(SnapshotUnavailable):
        store.get("production")


def test_store_get__database_error__warning_logged_once(
    production: Environment,
    chat: Served,
    make_store: Callable[..., SnapshotStore],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    store.get("production")

    def unreachable(environment: str) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(store, "_database_revision", unreachable)
    for _ in range(3):
        store.get("production")

    assert [r.levelname for r in caplog.records if "database unreachable" in r.getMessage()] == ["WARNING"]


# SnapshotStore: threads


@pytest.mark.django_db(transaction=True)
def test_store_get__many_threads_while_revisions_change__every_read_consistent(
    make_store: Callable[..., SnapshotStore],
) -> None:
    environment = make_environment(key="threads")
    served = served_flag(environment, key="busy")
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                snapshot = store.get("threads")
                served_now = snapshot.resolve("busy", {"targetingKey": "u"})
                assert served_now.flag_state.endswith(f":{snapshot.revision}")
        except BaseException as exc:  # collected, and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for enabled in (False, True, False, True):
        services.set_flag_enabled(flag=served.flag, environment=environment, enabled=enabled, actor=ACTOR)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert store.get("threads").revision == reloaded(environment).revision


def test_store_get__revision_bumped_without_announcement__found_by_the_check(
    production: Environment, chat: Served, make_store: Callable[..., SnapshotStore]
) -> None:
    store = make_store(redis_url="", check_seconds=0, recheck_seconds=0)
    before = store.get("production").revision

    Environment.objects.filter(pk=production.pk).update(revision=F("revision") + 1)

    assert store.get("production").revision == before + 1


def test_compile_snapshot__more_experiment_splits__same_number_of_queries(production: Environment) -> None:
    def add_experiments(count: int) -> None:
        for _ in range(count):
            served = served_flag(production)
            set_experiment_split(
                flag=served.flag,
                environment=production,
                arms=[
                    ArmSpec("baseline", 1, 5000),
                    ArmSpec("concise", 2, 2500),
                    ArmSpec("verbose", 3, 2500),
                ],
                actor=ACTOR,
            )

    add_experiments(1)
    with CaptureQueriesContext(connection) as one_flag:
        compile_snapshot(reloaded(production))
    add_experiments(4)
    with CaptureQueriesContext(connection) as five_flags:
        document = compile_snapshot(reloaded(production))

    arms = [flag["experiment"]["arms"] for flag in document["flags"].values()]
    assert [[arm["name"] for arm in flag_arms] for flag_arms in arms] == [
        ["baseline", "concise", "verbose"]
    ] * 5
    assert all(set(flag["versions"]) == {"1", "2", "3"} for flag in document["flags"].values())
    assert len(five_flags.captured_queries) == len(one_flag.captured_queries)
