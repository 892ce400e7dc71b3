"""The gunicorn settings every Flagstaff web server shares: `gunicorn -c controlplane/gunicorn_conf.py`.

`manage.py serve`, the Dockerfile, docker-compose and the HTTP benchmarks all start gunicorn with
this file; the bind address, workers and threads stay on each command line (which overrides
anything here).
"""

from __future__ import annotations

import errno
import socket
import sys
from typing import Any

from gunicorn.glogging import Logger

from controlplane.redaction import redact_url_credentials

# An open change stream (SSE) holds one thread for its life; kept-alive connections between
# requests wait in the worker's poller, not in a thread (docs/serving.md, "Workers").
worker_class = "gthread"

# One listening socket per worker (SO_REUSEPORT): the kernel spreads new connections over the
# workers by their addresses' hash. With the one socket all workers share, whichever worker woke
# first accepted, and kept-alive connections stay where they were accepted: connections opened
# together piled onto one worker, one process (one GIL) served nearly every request and resolve's
# tail latency grew with it (bench/bench_resolve_http.py runs these settings and shows the
# figures). Only Linux balances SO_REUSEPORT sockets (BSD and macOS hand every connection to one
# of them).
reuse_port = sys.platform == "linux"

# gunicorn 24+ opens a control socket at one fixed path per user (~/.gunicorn/gunicorn.ctl), so
# every server on a machine (the test suite's, make fuzz's, a benchmark's, make run's) fought
# over the one file. Flagstaff never uses the control interface: it stays closed.
control_socket_disable = True

# How long a stopping worker lets the requests in flight finish before it closes their
# connections. Below `manage.py serve`'s STOP_GRACE_SECONDS (10 s), after which serve kills the
# gunicorn master, and Docker's default stop timeout (10 s): with gunicorn's default of 30 s a
# worker still draining outlived its killed master, an orphan serving nothing, for up to 20 s more
# (seen as a stray process once the demo's Ctrl-C had returned, tests/demo/test_make_demo.py).
graceful_timeout = 8

# How long a thread ready to run waits for one holding the GIL in Python code before the
# interpreter makes it let go. CPython's 5 ms suits batch work; in a gthread worker the poller
# that dispatches the next request and the threads answering others (a fraction of a millisecond
# of CPU each for resolve) take turns, and each turn could cost a waiting request up to 5 ms.
# 0.5 ms lets a typical request finish its turn: paired open-loop runs of
# bench/bench_resolve_http.py show lower OFREP and resolve tail latency at the same CPU per request.
SWITCH_INTERVAL_SECONDS = 0.0005


class RedactingLogger(Logger):
    """gunicorn's logger, with stream tickets redacted from every access-log field (the request
    line, the query string, the referrer, headers and environ values)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {
            name: redact_url_credentials(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }


logger_class = RedactingLogger


def on_starting(server: Any) -> None:
    """Before any worker binds: keep per-worker sockets safe.

    A Unix socket cannot be shared that way (each worker would remove the previous worker's
    socket file), so any `unix:` or `fd://` bind turns `reuse_port` off. And a port already in
    use must stop the server here, as it does without `reuse_port`: workers binding with
    SO_REUSEPORT would otherwise share a port with another server of the same user (a forgotten
    `make run`), or fail one by one and be restarted forever.
    """
    if not server.cfg.reuse_port:
        return
    addresses = server.cfg.address
    if not all(isinstance(address, tuple) for address in addresses):
        server.cfg.set("reuse_port", False)
        return
    for host, port in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                server.log.error("Cannot listen on %s:%s: %s", host, port, reason)
                sys.exit(1)


def when_ready(server: Any) -> None:
    """gunicorn names the sockets its master listens on, and with a socket per worker the master
    has none: its "Listening at:" line is blank. Say where the workers listen instead."""
    if not server.cfg.reuse_port:
        return
    for host, port in server.cfg.address:
        shown = f"[{host}]" if ":" in host else host
        server.log.info("Listening at: http://%s:%s (a socket per worker)", shown, port)


def post_fork(server: Any, worker: Any) -> None:
    """In each worker process, before it loads the application."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
