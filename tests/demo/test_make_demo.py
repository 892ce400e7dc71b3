"""`make demo` on a fresh clone of this repository's HEAD: it comes up with no Anthropic key,
one canary is promoted to everyone and one rolled back by itself, and Ctrl-C stops every process.

The clone reuses this test run's virtualenv (`VENV=`, its install stamp marked old-enough with
`make -o`) instead of installing again; its code is the clone's own (Python puts the clone's
directory first on the path). `DEMO_STAGE_SECONDS=0` compresses the schedule: the stages last as
long as the statistics need, no longer.

Embedded pass only: `make demo` always runs on the embedded default (it unsets DATABASE_URL,
REDIS_URL and CELERY_BROKER_URL), so the services pass would run the very same thing again and
spend another minute and a half of CI on it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
SETTLE_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 30.0
# A log line of the web process, the Celery worker and beat, or the access log.
LOG_LINE = re.compile(r"^\s*(\[\d{4}-\d\d-\d\d |\d{4}-\d\d-\d\d \d\d:|127\.0\.0\.1 - - \[)")

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") == "1",
        reason="make demo runs on the embedded default whatever the pass: the embedded pass runs it",
    ),
    pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository to clone"),
    pytest.mark.skipif(not (VENV / ".installed").exists(), reason="needs a virtualenv made by make"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_pair() -> int:
    """A port whose next one is free too (`serve` puts the stream process there)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def session_processes(session: int) -> list[str]:
    """Command lines of the live processes of `session` (zombies do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        if "State:\tZ" not in status:
            found.append(f"{entry.name}: {command}")
    return found


class Output:
    """The demo's output, read line by line in a thread so that waiting never blocks on it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def text(self) -> str:
        """What a failed assertion shows: the processes' last lines, then the demo's own story
        (its lines without the servers' and workers' logs), last, where a CI log's tail shows it."""
        with self._changed:
            lines = list(self.lines)
        story = [line for line in lines if not LOG_LINE.match(line)]
        return "\n".join(["--- the last 40 lines ---", *lines[-40:], "--- the demo's story ---", *story])


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "flagstaff"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=60)
    return target


@pytest.fixture
def demo(clone: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "DATABASE_URL", "REDIS_URL", "CELERY_", "FLAGSTAFF_", "DJANGO_"))
    }
    stamp = VENV / ".installed"
    command = [
        shutil.which("make") or "make",
        "--no-print-directory",
        "-o",
        str(stamp),
        "demo",
        f"VENV={VENV}",
        f"PORT={free_port_pair()}",
        "DEMO_STAGE_SECONDS=0",
    ]
    # Its own session, like a terminal's foreground job: Ctrl-C is SIGINT to the whole group.
    process = subprocess.Popen(
        command,
        cwd=clone,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(process)
    try:
        yield process, output
    finally:
        if process.poll() is None:  # the test failed before its Ctrl-C: leave nothing behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for line in session_processes(process.pid):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_make_demo__fresh_clone__one_canary_promoted_one_rolled_back_and_ctrl_c_stops_everything(
    demo: tuple[subprocess.Popen[str], Output],
) -> None:
    process, output = demo

    settled = output.wait_for(r"Both canaries have settled: (.*)\.", SETTLE_TIMEOUT_SECONDS)
    assert settled is not None, output.text()
    assert output.wait_for(r"Flagstaff demo is running at http://127\.0\.0\.1:\d+/", 0), output.text()
    assert output.wait_for(r"Log in as demo@flagstaff\.local with password \S+", 0), output.text()
    assert sorted(re.findall(r"rollout \d+ (promoted|rolled back)", settled.group(1))) == [
        "promoted",
        "rolled back",
    ]
    assert output.wait_for(r"\[staging\] v2 at 10 %, tick \d+: rolled back: live pass rate", 0), output.text()
    assert output.wait_for(r"\[production\] v3 at 10 %, tick \d+: promoted", 0), output.text()
    assert output.wait_for(r"\[production\] v3 at 50 %, tick \d+: promoted", 0), output.text()

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C

    # make itself dies of the SIGINT, as it does in a terminal; the demo under it stops in order.
    assert process.wait(timeout=STOP_TIMEOUT_SECONDS) in (0, -signal.SIGINT), output.text()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_processes(process.pid) == []
    assert output.wait_for(r"Stopped the traffic simulator, Flagstaff and the fake Anthropic API\.", 5), (
        output.text()
    )
