"""The stream process's application module (controlplane.asgi), imported as uvicorn imports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stream_application__imported__full_collections_rare_and_the_import_frozen() -> None:
    # Its own interpreter: the module sets up Django and changes the process's collector.
    code = "import gc, controlplane.asgi; print(*gc.get_threshold(), gc.get_freeze_count() > 0)"
    env = {
        **os.environ,
        "SECRET_KEY": "test-only",
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }

    answer = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert answer.stdout.split() == ["700", "10", "1000", "True"]
