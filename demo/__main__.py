"""`python -m demo`: what `make demo` runs once the demo database is migrated.

1. the fake Anthropic API on loopback, scripted with the demo's answers (demo/scenario.py);
2. Flagstaff (`manage.py serve`: web, streams, a worker with beat) told to call that fake, with
   live scoring and rollout ticks every few seconds;
3. the seed: the flag, its eval set and versions, the gate run by the worker on all three
   versions, then a canary of each candidate (demo/seed.py);
4. the traffic simulator, one simulated service per environment (demo/traffic.py);
5. a line for every decision the analysis takes, in its own words, until Ctrl-C (or SIGTERM),
   which stops the simulator, Flagstaff and the fake server, in that order.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 300.0
STOP_GRACE_SECONDS = 20.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port of the web UI and API")
    parser.add_argument(
        "--anthropic-port", type=int, default=0, help="the fake Anthropic API's port (0: any)"
    )
    parser.add_argument(
        "--min-stage-seconds", type=int, default=20, help="each canary stage lasts at least this long"
    )
    parser.add_argument(
        "--users-per-second", type=float, default=150.0, help="simulated users per environment and second"
    )
    return parser.parse_args(argv)


class Stopper:
    """Ctrl-C and SIGTERM set one event that every loop of the demo waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stopper = Stopper()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()
    # After setup: these read the models.
    from demo import scenario
    from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
    from demo.run import DemoRun

    with FakeAnthropic(port=args.anthropic_port) as fake:
        scenario.script(fake)
        serve = start_flagstaff(args.bind, anthropic_url=fake.base_url, api_key=DEFAULT_API_KEY)
        try:
            url = f"http://{args.bind}"
            if not wait_until_up(url, serve, stopper.event):
                return 0 if stopper.event.is_set() else 1
            run = DemoRun(url=url, anthropic_url=fake.base_url, stop=stopper.event, say=say)
            run.play(min_stage_seconds=args.min_stage_seconds, users_per_second=args.users_per_second)
        finally:
            stop_flagstaff(serve)
    say("Stopped the traffic simulator, Flagstaff and the fake Anthropic API.")
    return 0


def start_flagstaff(bind: str, *, anthropic_url: str, api_key: str) -> subprocess.Popen[bytes]:
    """`manage.py serve` calling the fake API, scoring and ticking every few seconds."""
    environment = os.environ | {
        "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_BASE_URL": anthropic_url,
        "FLAGSTAFF_LIVE_SCORING_SECONDS": "2",
        "FLAGSTAFF_TICK_SWEEP_SECONDS": "2",
    }
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "serve", "--bind", bind, "--web-workers", "1"]
    return subprocess.Popen(argv, env=environment)  # noqa: S603 - our interpreter, fixed arguments


def wait_until_up(url: str, serve: subprocess.Popen[bytes], stop: threading.Event) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if serve.poll() is not None:
            say(f"Flagstaff exited with status {serve.returncode} before it was up.")
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:  # noqa: S310 - our own URL
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        stop.wait(0.5)
    if not stop.is_set():
        say(f"Flagstaff did not answer at {url}/healthz within {READY_TIMEOUT_SECONDS:.0f} s.")
    return False


def stop_flagstaff(serve: subprocess.Popen[bytes]) -> None:
    """`serve` stops its web, stream and worker processes on SIGTERM (and on the terminal's Ctrl-C)."""
    if serve.poll() is None:
        serve.terminate()
    try:
        serve.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        serve.kill()
        serve.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
