import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flagstaff import Flagstaff, ResolvedConfig, Snapshot, SnapshotError
from flagstaff.flag_state import FlagState
from tests.client.fake_controlplane import TOKEN, FakeControlPlane, MakeClient, content, unreachable_url

SNAPSHOT = "/snapshot"
STREAM = "/stream"
ROLLOUT = {"id": "split-12", "seed": "seed-12", "candidate": 2, "weight": 5000}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_resolve__snapshot_fetched__serves_the_serving_version(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=3, contents={3: content(3)})

    resolved = make_client().resolve("support-chat", {"targetingKey": "user-1"})

    assert resolved.content == content(3)
    assert (resolved.version, resolved.variant, resolved.reason) == (3, "v3", "STATIC")
    assert resolved.surface == "chat"
    assert resolved.flag_state == f"fs1:production:support-chat:3:-:-:{controlplane.revision}"


def test_resolve__rollout__arm_and_split_in_flag_state(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1, contents={1: content(1), 2: content(2)}, rollout=ROLLOUT)
    client = make_client()

    results = [client.resolve("support-chat", {"targetingKey": f"user-{n}"}) for n in range(40)]

    assert {r.arm for r in results} == {"candidate", "control"}
    for result in results:
        state = FlagState.decode(result.flag_state or "")
        assert (state.version, state.arm, state.split_id) == (result.version, result.arm, "split-12")
        assert result.content == content(result.version or 0)


def test_resolve__same_outcome__one_shared_answer_per_snapshot(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1, contents={1: content(1), 2: content(2)}, rollout=ROLLOUT)
    client = make_client(poll_interval=60.0)

    results = [client.resolve("support-chat", {"targetingKey": f"user-{n}"}) for n in range(40)]
    by_arm = {result.arm: result for result in results}
    revision = controlplane.set_flag("support-chat", version=1, contents={1: content(1), 2: content(2)})
    assert client.wait_for_revision(revision, timeout=5.0)
    after = client.resolve("support-chat", {"targetingKey": "user-1"})

    assert set(by_arm) == {"candidate", "control"}
    assert all(result is by_arm[result.arm] for result in results)
    assert (after.reason, after.arm, after.revision) == ("STATIC", None, revision)


def test_resolve__disabled_flag__each_call_gets_its_own_default(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=None, enabled=False)
    client = make_client()

    first = client.resolve("support-chat", default=content(1))
    second = client.resolve("support-chat", default=content(2))

    assert (first.content, second.content) == (content(1), content(2))


def test_resolve__targeting_rule_matches__serves_rule_version(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    rule = {"constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}], "version": 2}
    controlplane.set_flag("support-chat", version=1, contents={1: content(1), 2: content(2)}, rules=[rule])
    client = make_client()

    resolved = client.resolve("support-chat", {"targetingKey": "u", "plan": "pro"})

    assert (resolved.version, resolved.reason) == (2, "TARGETING_MATCH")


def test_resolve__unknown_flag__default_with_flag_not_found(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")

    resolved = make_client().resolve("no-such-flag", {}, default={"model": "m", "max_tokens": 1})

    assert (resolved.reason, resolved.error_code) == ("ERROR", "FLAG_NOT_FOUND")
    assert resolved.content == {"model": "m", "max_tokens": 1}
    assert resolved.version is None
    assert resolved.flag_state is None


def test_resolve__default_configs__used_when_no_default_passed(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    client = make_client(default_configs={"support-chat": content(99)})

    assert client.resolve("support-chat").content == content(99)


def test_resolve__disabled_flag__default_with_disabled_reason(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=None, enabled=False)

    resolved = make_client().resolve("support-chat", default=content(0))

    assert (resolved.reason, resolved.version, resolved.content) == ("DISABLED", None, content(0))
    assert resolved.flag_state == f"fs1:production:support-chat:-:-:-:{controlplane.revision}"


def test_resolve__context_not_a_mapping__error_invalid_context(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")

    resolved = make_client().resolve("support-chat", ["not", "a", "mapping"])  # type: ignore[arg-type]

    assert (resolved.reason, resolved.error_code) == ("ERROR", "INVALID_CONTEXT")


def test_resolve__flag_that_does_not_compile__error_for_that_flag_only(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("broken", raw={"key": "broken", "enabled": "yes"})
    controlplane.set_flag("support-chat")
    client = make_client()

    assert client.resolve("broken").error_code == "PARSE_ERROR"
    assert client.resolve("support-chat").reason == "STATIC"


def test_resolve__content_is_a_copy__mutation_does_not_leak(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    client = make_client()

    client.resolve("support-chat").content["max_tokens"] = 1  # type: ignore[index]

    assert client.resolve("support-chat").content == content(1)


def test_init__server_unreachable__no_exception_and_default_with_error() -> None:
    client = Flagstaff(url=unreachable_url(), token=TOKEN, environment="production", poll_interval=0.1)
    try:
        resolved = client.resolve("support-chat", {"targetingKey": "u"}, default=content(0))
    finally:
        client.close()

    assert (resolved.reason, resolved.error_code) == ("ERROR", "PROVIDER_NOT_READY")
    assert resolved.content == content(0)


def test_init__bad_token__no_exception_and_error(controlplane: FakeControlPlane) -> None:
    controlplane.set_flag("support-chat")
    with Flagstaff(url=controlplane.url, token="wrong", environment="production") as client:
        resolved = client.resolve("support-chat")

    assert resolved.reason == "ERROR"
    assert controlplane.seen(SNAPSHOT)[0].status == 401


def test_init__server_down_with_cache_file__serves_cache_as_stale(
    controlplane: FakeControlPlane, make_client: MakeClient, tmp_path: Path
) -> None:
    cache = tmp_path / "snapshot.json"
    controlplane.set_flag("support-chat", version=2, contents={2: content(2)})
    make_client(cache_path=cache).close()
    controlplane.stop()

    client = make_client(cache_path=cache)
    resolved = client.resolve("support-chat", {"targetingKey": "u"})

    assert (resolved.reason, resolved.evaluation_reason) == ("STALE", "STATIC")
    assert (resolved.version, resolved.content) == (2, content(2))


def test_init__cache_of_another_environment__ignored(controlplane: FakeControlPlane, tmp_path: Path) -> None:
    cache = tmp_path / "snapshot.json"
    controlplane.set_flag("support-chat")
    cache.write_text(json.dumps(controlplane.document() | {"environment": "staging"}))
    controlplane.stop()

    with Flagstaff(url=controlplane.url, token=TOKEN, environment="production", cache_path=cache) as client:
        assert client.resolve("support-chat").error_code == "PROVIDER_NOT_READY"


def test_fetch__cache_path__writes_document_atomically(
    controlplane: FakeControlPlane, make_client: MakeClient, tmp_path: Path
) -> None:
    cache = tmp_path / "snapshot.json"
    controlplane.set_flag("support-chat")

    make_client(cache_path=cache)

    assert json.loads(cache.read_text()) == controlplane.document()
    assert os.listdir(tmp_path) == ["snapshot.json"]  # no temporary file left behind


def test_from_file__offline__resolves_with_engine_reasons(
    controlplane: FakeControlPlane, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.json"
    controlplane.set_flag("support-chat", version=4, contents={4: content(4)})
    path.write_text(json.dumps(controlplane.document()))
    controlplane.stop()

    resolved = Flagstaff.from_file(path).resolve("support-chat", {"targetingKey": "u"})

    assert (resolved.reason, resolved.version) == ("STATIC", 4)


def test_from_file__not_a_snapshot__raises(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text('{"format": 99}')

    with pytest.raises(SnapshotError):
        Flagstaff.from_file(path)


def test_refresh__revision_announced_on_stream__client_refetches_conditionally(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1)
    client = make_client(poll_interval=60.0)

    revision = controlplane.set_flag("support-chat", version=2, contents={1: content(1), 2: content(2)})

    assert client.wait_for_revision(revision, timeout=5.0)
    assert client.resolve("support-chat").version == 2
    assert controlplane.seen(SNAPSHOT)[-1].headers["if-none-match"] == f'"production:{revision - 1}"'
    assert len(controlplane.seen(STREAM)) == 1  # one stream, no polling


def test_refresh__stream_reconnects__sends_last_event_id(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    client = make_client(poll_interval=60.0)
    assert controlplane.wait_for(lambda: len(controlplane.seen(STREAM)) == 1)

    controlplane.drop_streams()

    assert controlplane.wait_for(lambda: len(controlplane.seen(STREAM)) == 2)
    assert controlplane.seen(STREAM)[1].headers["last-event-id"] == str(client.revision)


def test_refresh__stream_ends_with_retry_hint__reconnects_after_the_hint(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.retry_ms = 700
    controlplane.set_flag("support-chat")
    make_client(poll_interval=60.0)
    assert controlplane.wait_for(lambda: len(controlplane.seen(STREAM)) == 1)
    started = time.monotonic()

    controlplane.drop_streams()

    assert controlplane.wait_for(lambda: len(controlplane.seen(STREAM)) == 2)
    assert time.monotonic() - started >= 0.7  # the client's own delay is at most 0.5 s


def test_refresh__stream_unavailable__falls_back_to_etag_polling(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.stream_status = 503
    controlplane.set_flag("support-chat", version=1)
    client = make_client(poll_interval=0.05)
    assert controlplane.wait_for(lambda: any(s.status == 304 for s in controlplane.seen(SNAPSHOT)))

    revision = controlplane.set_flag("support-chat", version=2, contents={2: content(2)})

    assert client.wait_for_revision(revision, timeout=5.0)
    assert client.resolve("support-chat").reason == "STATIC"


def test_refresh__poll_mode__never_opens_the_stream(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1)
    client = make_client(refresh="poll", poll_interval=0.05)

    revision = controlplane.set_flag("support-chat", version=2, contents={2: content(2)})

    assert client.wait_for_revision(revision, timeout=5.0)
    assert controlplane.seen(STREAM) == []


def test_resolve__server_goes_down__stale_then_fresh_when_back(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1)
    client = make_client(poll_interval=0.05)
    assert client.resolve("support-chat").reason == "STATIC"

    controlplane.stop()
    assert wait_until(lambda: client.stale)
    stale = client.resolve("support-chat")
    controlplane.start()
    assert wait_until(lambda: not client.stale)

    assert (stale.reason, stale.evaluation_reason, stale.version) == ("STALE", "STATIC", 1)
    assert client.resolve("support-chat").reason == "STATIC"


def test_resolve__snapshot_failing_with_5xx__stale(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.stream_status = 503
    controlplane.set_flag("support-chat")
    client = make_client(refresh="poll", poll_interval=0.05)

    controlplane.fail_snapshot(500, times=1000)

    assert wait_until(lambda: client.resolve("support-chat").reason == "STALE")


def test_resolve__not_confirmed_for_stale_after__stale(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    client = make_client(refresh="poll", poll_interval=60.0, stale_after=0.1)
    assert client.resolve("support-chat").reason == "STATIC"

    time.sleep(0.15)

    assert client.resolve("support-chat").reason == "STALE"


def test_resolve__many_threads_while_snapshot_swaps__always_consistent(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", version=1)
    client = make_client(poll_interval=60.0)
    stop, saw_last = threading.Event(), threading.Event()
    results: list[list[ResolvedConfig]] = [[] for _ in range(8)]
    failures: list[BaseException] = []

    def reader(seen: list[ResolvedConfig]) -> None:
        try:
            while not stop.is_set():
                seen.extend(client.resolve("support-chat", {"targetingKey": "u"}) for _ in range(100))
                if seen[-1].version == 11:
                    saw_last.set()
                time.sleep(0.0005)  # leave the GIL to the refresh thread now and then
        except BaseException as error:
            failures.append(error)

    readers = [threading.Thread(target=reader, args=(seen,)) for seen in results]
    for thread in readers:
        thread.start()
    try:
        for version in range(2, 12):
            revision = controlplane.set_flag(
                "support-chat", version=version, contents={version: content(version)}
            )
            assert client.wait_for_revision(revision, timeout=5.0)
        assert saw_last.wait(timeout=5.0)
    finally:
        stop.set()
        for thread in readers:
            thread.join()

    everything = [result for seen in results for result in seen]
    assert failures == []
    assert {r.version for r in everything} >= {1, 11}
    for result in everything:
        # The content, version and revision always come from one and the same snapshot.
        assert result.content == content(result.version or 0)
        assert result.revision == result.version + 1  # type: ignore[operator]


def test_close__stream_open__thread_stops_promptly(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.keepalive_interval = 30.0
    controlplane.set_flag("support-chat")
    client = make_client(poll_interval=60.0)
    assert controlplane.wait_for(lambda: len(controlplane.seen(STREAM)) == 1)
    thread = client._thread
    assert thread is not None

    started = time.monotonic()
    client.close()

    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0


def test_context_manager__exit__closes(controlplane: FakeControlPlane) -> None:
    with Flagstaff(url=controlplane.url, token=TOKEN, environment="production") as client:
        thread = client._thread

    assert thread is not None
    assert not thread.is_alive()


def test_request_kwargs__resolved_config__feeds_messages_create(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat", contents={1: content(1, system="Be brief.")})
    resolved = make_client().resolve("support-chat")
    messages = [{"role": "user", "content": "Hi"}]

    kwargs = resolved.request_kwargs(messages=messages)

    assert kwargs["model"] == "claude-sonnet-5-5"
    assert kwargs["system"] == "Be brief."
    assert kwargs["messages"] == messages
    assert resolved.is_beta is False


def test_is_beta__config_with_betas__true(controlplane: FakeControlPlane, make_client: MakeClient) -> None:
    controlplane.set_flag("support-chat", contents={1: content(1, betas=["some-beta-2026-01-01"])})

    assert make_client().resolve("support-chat").is_beta is True


def test_snapshot_parse__not_json__raises() -> None:
    with pytest.raises(SnapshotError):
        Snapshot.parse(b"<html>")


def test_import__without_anthropic__resolution_works(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    fake = FakeControlPlane()
    fake.set_flag("support-chat")
    path.write_text(json.dumps(fake.document()))
    script = (
        "import sys; sys.modules['anthropic'] = None; sys.modules['httpx2'] = None\n"
        "from flagstaff import Flagstaff\n"
        f"print(Flagstaff.from_file({str(path)!r}).resolve('support-chat').reason)\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "STATIC"
