"""controlplane/gunicorn_conf.py: a listening socket per worker on Linux and its safety checks, and
the workers' GIL switch interval.

The hook is driven with gunicorn's own Config; the rest with real gunicorn processes serving
tests/fakes/worker_wsgi.py (it answers with the worker's pid and GIL switch interval).
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from controlplane import gunicorn_conf

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "controlplane" / "gunicorn_conf.py"
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balances only on Linux")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_with(*binds: str) -> SimpleNamespace:
    cfg = Config()
    cfg.set("bind", list(binds))
    cfg.set("reuse_port", gunicorn_conf.reuse_port)
    return SimpleNamespace(cfg=cfg, log=logging.getLogger("gunicorn.error"))


def start_gunicorn(port: int, workers: int, home: Path | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "gunicorn", "tests.fakes.worker_wsgi:application", "--config", str(CONF)]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "2"]
    env = {**os.environ, "HOME": str(home)} if home else None
    return subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (Linux: /proc/net/tcp; state 0A is LISTEN)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


@pytest.fixture
def served() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Two workers, both listening: the master forks them one after the other, and each binds
    its own socket (a connection made before the second is bound can only reach the first)."""
    port = free_port()
    process = start_gunicorn(port, workers=2)
    try:
        deadline = time.monotonic() + 30
        while listening_sockets(port) < 2:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gunicorn's two workers did not listen within 30 s"
            time.sleep(0.05)
        yield port, process
    finally:
        process.terminate()
        process.communicate(timeout=30)


@linux_only
def test_every_worker_gets_connections_opened_together(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = served
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(32)]
    for connection in connections:
        connection.connect()
    pids = set()
    for connection in connections:
        connection.request("GET", "/")
        pids.add(connection.getresponse().read().split()[0])
        connection.close()
    # Hashed over two sockets, 32 connections all land on one with probability 2**-31.
    assert len(pids) == 2


@linux_only
def test_workers_take_turns_at_the_gil_every_half_millisecond(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/")
    interval = float(connection.getresponse().read().split()[1])
    connection.close()

    assert interval == gunicorn_conf.SWITCH_INTERVAL_SECONDS == 0.0005
    assert sys.getswitchinterval() == 0.005  # this process: CPython's default, untouched


@linux_only
def test_a_second_server_on_the_same_port_is_refused(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, first = served
    second = start_gunicorn(port, workers=1)
    _, log = second.communicate(timeout=30)
    assert second.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: address already in use" in log
    assert first.poll() is None


def test_no_control_socket__servers_on_one_machine_share_no_file(tmp_path: Path) -> None:
    """gunicorn would open ~/.gunicorn/gunicorn.ctl in a thread once its workers are spawned; its
    shutdown waits for that thread, so the folder would exist by the time the master exits."""
    port = free_port()
    process = start_gunicorn(port, workers=1, home=tmp_path)
    deadline = time.monotonic() + 30
    while listening_sockets(port) < 1:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "gunicorn did not listen within 30 s"
        time.sleep(0.05)
    process.terminate()
    process.communicate(timeout=30)

    assert not (tmp_path / ".gunicorn").exists()


@linux_only
def test_the_log_says_where_the_workers_listen() -> None:
    port = free_port()
    process = start_gunicorn(port, workers=1)
    deadline = time.monotonic() + 30
    while listening_sockets(port) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.terminate()
    _, log = process.communicate(timeout=30)

    assert f"Listening at: http://127.0.0.1:{port} (a socket per worker)" in log


@pytest.mark.parametrize(
    ("bind", "shown"), [("127.0.0.1:8000", "http://127.0.0.1:8000"), ("[::1]:8001", "http://[::1]:8001")]
)
def test_when_ready__socket_per_worker__logs_each_address(
    bind: str, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_with(bind)
    server.cfg.set("reuse_port", True)
    with caplog.at_level(logging.INFO, logger="gunicorn.error"):
        gunicorn_conf.when_ready(server)
    assert f"Listening at: {shown} (a socket per worker)" in caplog.text


@linux_only
def test_a_free_tcp_port_keeps_a_socket_per_worker() -> None:
    server = server_with(f"127.0.0.1:{free_port()}")
    gunicorn_conf.on_starting(server)
    assert server.cfg.reuse_port is True


def test_a_port_in_use_stops_the_server(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = server_with(f"127.0.0.1:{port}")
        server.cfg.set("reuse_port", True)
        with pytest.raises(SystemExit) as stopped:
            gunicorn_conf.on_starting(server)
    assert stopped.value.code == 1
    assert f"Cannot listen on 127.0.0.1:{port}: address already in use" in caplog.text


@pytest.mark.parametrize("bind", ["unix:/tmp/flagstaff-web.sock", "fd://3"])
def test_a_unix_socket_or_inherited_descriptor_shares_one_socket(bind: str) -> None:
    server = server_with("127.0.0.1:8000", bind)
    server.cfg.set("reuse_port", True)
    gunicorn_conf.on_starting(server)
    assert server.cfg.reuse_port is False


def test_access_log__stream_ticket_in_the_url__redacted() -> None:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "tests.fakes.worker_wsgi:application", "--config", str(CONF)]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-"]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while listening_sockets(port) < 1:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gunicorn did not listen within 30 s"
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        path = "/api/v1/environments/production/stream?format=ofrep&ticket=SeCrEt.TiCkEt:value"
        connection.request("GET", path, headers={"Referer": f"http://example.test{path}"})
        connection.getresponse().read()
        connection.close()
    finally:
        process.terminate()
        access_log, _ = process.communicate(timeout=30)

    assert "GET /api/v1/environments/production/stream?format=ofrep&ticket=[redacted] HTTP/1.1" in access_log
    assert "SeCrEt" not in access_log


def test_graceful_timeout__under_the_grace_serve_gives_gunicorn_before_killing_it() -> None:
    from controlplane.management.commands.serve import STOP_GRACE_SECONDS

    assert gunicorn_conf.graceful_timeout < STOP_GRACE_SECONDS
    assert Config().settings["graceful_timeout"].default > STOP_GRACE_SECONDS  # why it is set
