"""A WSGI application that answers which worker served it: `<process id> <GIL switch interval>`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"{os.getpid()} {sys.getswitchinterval()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
