"""The Makefile's `run` and install targets, run by make itself (dry-run, or against a scratch
virtualenv path that cannot be created)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_run__port_given__serve_binds_it() -> None:
    assert "serve --bind 127.0.0.1:9000" in make("-n", "run", "PORT=9000").stdout


def test_run__bind_given__serve_binds_it() -> None:
    assert "serve --bind 0.0.0.0:8080" in make("-n", "run", "BIND=0.0.0.0:8080").stdout


def test_install__fails__nothing_but_one_line_then_the_log(tmp_path: Path) -> None:
    venv, var = tmp_path / "venv", tmp_path / "var"

    result = make(f"{venv}/.installed", f"VENV={venv}", f"VAR={var}", "PYTHON=/no/such/python")

    assert result.returncode != 0
    assert result.stdout == f"Installing Flagstaff into {venv} (log: {var}/install.log)\n"
    assert "/no/such/python" in result.stderr
    assert "The install failed" in result.stderr
