"""`make fuzz`: schemathesis against a live server, with an admin token and a read-only token.

Starts gunicorn (the production entry point, controlplane.wsgi) on a free loopback port (or
FUZZ_PORT) over a fresh, seeded database of its own (SQLite in a temporary directory; no
Redis), then runs schemathesis from the server's own OpenAPI schema once per token (and a
third time, on the serving endpoints, with an environment-bound serving token): a bounded
number of generated requests per operation (FUZZ_EXAMPLES, default 20), checked for server
errors and for answers that break the documented response schema. Path parameters name the
seeded objects (schemathesis.toml beside this file). Exits non-zero when either run found a
failure; JUnit reports and the server's log go to test-artifacts/fuzz/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "test-artifacts" / "fuzz"
CHECKS = "not_a_server_error,response_schema_conformance"
BIN = Path(sys.executable).parent
# A worker boots in a few seconds, but in minutes on a machine shared by many test runs.
SERVER_START_SECONDS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(var_dir: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG"}
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "FLAGSTAFF_VAR_DIR": var_dir,
        "SECRET_KEY": "fuzz-only-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1",
        # A change stream answers for a second, not five minutes, so that schemathesis moves on.
        "FLAGSTAFF_STREAM_MAX_SECONDS": "1",
        "FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": "0.5",
        "LOG_LEVEL": "ERROR",
    }
    return env


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer /healthz within {SERVER_START_SECONDS} s")


# The serving token's run: the endpoints services call (OFREP needs an environment-bound token).
SERVING_PATHS = r"^/(ofrep/|api/v1/(resolve|telemetry/calls|environments/\{env\}/snapshot))"


def fetch_schema(base: str, into: Path) -> Path:
    """The server's OpenAPI document, fetched once for every run: generating it takes seconds,
    longer than schemathesis waits for a schema on a busy machine."""
    with urllib.request.urlopen(f"{base}/api/v1/schema/", timeout=300) as answer:
        into.write_bytes(answer.read())
    return into


def fuzz(base: str, schema: Path, name: str, secret: str, examples: str, *extra: str) -> int:
    print(f"== schemathesis with the {name} token", flush=True)
    argv = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(schema),
        "--url",
        base,
        "--checks",
        CHECKS,
        "--max-examples",
        examples,
        "--header",
        f"Authorization: Bearer {secret}",
        "--request-timeout",
        "30",
        "--workers",
        "2",
        "--seed",
        os.environ.get("FUZZ_SEED", "20261205"),
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-junit-path",
        str(REPORTS / f"{name}.xml"),
        *extra,
    ]
    return subprocess.run(argv, cwd=REPO, check=False).returncode


def main() -> int:
    examples = os.environ.get("FUZZ_EXAMPLES", "20")
    REPORTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flagstaff-fuzz-") as var_dir:
        env = server_environment(var_dir)
        python = sys.executable
        subprocess.run(
            [python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env, check=True
        )
        seeded = subprocess.run(
            [python, "-m", "tests.fuzz.seed"], cwd=REPO, env=env, check=True, capture_output=True, text=True
        )
        tokens: dict[str, str] = json.loads(seeded.stdout.strip().splitlines()[-1])
        port = int(os.environ.get("FUZZ_PORT") or free_port())
        base = f"http://127.0.0.1:{port}"
        gunicorn = [python, "-m", "gunicorn", "controlplane.wsgi:application"]
        gunicorn += ["--config", "controlplane/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
        gunicorn += ["--workers", "1", "--threads", "8"]
        server_log = (REPORTS / "server.log").open("w")
        server = subprocess.Popen(gunicorn, cwd=REPO, env=env, stdout=server_log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(base, server)
            schema = fetch_schema(base, Path(var_dir) / "openapi.yaml")
            results = {name: fuzz(base, schema, name, tokens[name], examples) for name in ("admin", "read")}
            results["serving"] = fuzz(
                base, schema, "serving", tokens["serving"], examples, "--include-path-regex", SERVING_PATHS
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
            server_log.close()
    print(
        "== fuzz:", ", ".join(f"{name} token {'ok' if rc == 0 else 'FAILED'}" for name, rc in results.items())
    )
    return 0 if not any(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
