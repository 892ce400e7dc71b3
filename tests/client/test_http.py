"""The client's event stream reader (flagstaff._http.EventStream) against a raw socket server
that writes what each test scripts: a stream that goes silent ends with a transport error
after the read timeout, and one that keeps talking is read for as long as it does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from flagstaff import _http

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
READ_TIMEOUT = 0.3


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


KEEPALIVE = chunk(b": keep-alive\n\n")


class ScriptedServer:
    """One connection: HEAD, then each scripted write READ_TIMEOUT / 3 after the previous one,
    then silence (the connection stays open) until the test ends."""

    def __init__(self, writes: list[bytes]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.writes = writes
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(HEAD)
            for data in self.writes:
                time.sleep(READ_TIMEOUT / 3)
                connection.sendall(data)
            self.done.wait(10)

    def stream(self) -> _http.EventStream:
        port = self.listener.getsockname()[1]
        endpoint = _http.Endpoint.parse(f"http://127.0.0.1:{port}")
        return _http.EventStream(endpoint, "/stream", headers={}, connect_timeout=2.0)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[type[ScriptedServer]]:
    servers: list[ScriptedServer] = []

    class Tracked(ScriptedServer):
        def __init__(self, writes: list[bytes]) -> None:
            super().__init__(writes)
            servers.append(self)

    yield Tracked
    for server in servers:
        server.close()


def test_event_stream__silent_for_the_read_timeout__ends_with_a_transport_error(
    serve: type[ScriptedServer],
) -> None:
    stream = serve([KEEPALIVE]).stream()
    assert stream.open(read_timeout=READ_TIMEOUT) == 200
    read: list[_http.ServerSentEvent | None] = []
    started = time.monotonic()

    with pytest.raises(_http.TRANSPORT_ERRORS):
        read.extend(stream.events())

    assert read  # the keep-alive's lines
    assert not any(read)  # then nothing
    assert READ_TIMEOUT <= time.monotonic() - started < READ_TIMEOUT + 2.0
    stream.close()


def test_event_stream__writes_closer_than_the_read_timeout__all_read_past_it(
    serve: type[ScriptedServer],
) -> None:
    event = b"event: changes\nid: 8\ndata: {}\n\n"
    # Six writes READ_TIMEOUT / 3 apart: twice the timeout in all, never silent for as long.
    stream = serve([KEEPALIVE] * 5 + [chunk(event)]).stream()
    assert stream.open(read_timeout=READ_TIMEOUT) == 200
    read: list[_http.ServerSentEvent | None] = []

    for item in stream.events():
        read.append(item)
        if item is not None:
            break

    assert read[-1] == _http.ServerSentEvent("changes", "{}", "8")
    assert not any(read[:-1])  # the keep-alives
    stream.close()
