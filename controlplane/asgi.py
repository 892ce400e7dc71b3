"""The stream process's application (docs/serving.md, "The stream process"): uvicorn serves
the change streams with it; pages and the rest of the API are the web processes' (wsgi.py).

Its requests are routed by `controlplane.stream_urls` (the stream and `healthz`); at most
MAX_OPENINGS stream requests are checked at once (flags.serving.fanout.OpeningLimit), and a
stream that its hub drops is ended as if its client had left (DroppableStreams).
"""

import gc
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import HttpRequest

from controlplane.boot import prepare_web_process

STREAM_GC_OLDEST_THRESHOLD = 1000

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
django.setup(set_prefix=False)

from flags.serving.fanout import DroppableStreams, OpeningLimit  # noqa: E402 (imports models: after django.setup())
from flags.snapshots import follow_announcements_elsewhere  # noqa: E402


class StreamRequest(ASGIRequest):
    urlconf = "controlplane.stream_urls"


class StreamHandler(ASGIHandler):
    """Django's ASGI handler with the middleware run as the web processes run it: synchronous,
    in one trip to the request thread with the view's checks. Run asynchronously, each of the
    eleven middleware took its own trip (and the checks one more), and a fleet reconnecting at
    once queued behind them for seconds (docs/serving.md, "The stream process").

    The request thread is one thread for every request of the process. Django enters a
    `ThreadSensitiveContext` per request, and without an executor of its own asgiref starts a
    thread for each such context and keeps it until the request ends: for a stream, its whole
    life. Every open stream then held an idle thread (its stack, its thread state, often a
    database connection), and the streams opening together ran their checks in hundreds of
    threads at once, taking turns at the GIL.
    """

    request_class = StreamRequest

    _middleware_chain: Callable[[HttpRequest], Any]  # Django's, undeclared in its stubs

    def __init__(self) -> None:
        super().__init__()
        self.request_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flagstaff-stream-request")

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Django's __call__, with the one request thread as the context's executor.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with ThreadSensitiveContext(executor=self.request_thread):
            await self.handle(scope, receive, send)


# One Redis subscription for the process: the hub's, not the snapshot store's.
follow_announcements_elsewhere()
application = OpeningLimit(DroppableStreams(StreamHandler()))
prepare_web_process()
# Full collections a hundred times rarer than CPython's default (the oldest generation is
# collected after 1,000 collections of the middle one, not 10). Every stream's objects are long-lived
# (its task, generators, request, connection: about 38 KiB a stream), and every event it is
# sent leaves it a new long-lived waiter, so the oldest generation's pending count grows by
# thousands per change and every third change or so a full collection walked every stream's
# objects holding the event loop: at 5,000 streams half of the process's CPU during such a
# change, which doubled its p99 (bench/bench_propagation.py). Cyclic garbage (a stream that
# ended with an exception) waits longer for the collector; the younger generations are
# collected as before (their thresholds are read, not restated).
gc.set_threshold(*gc.get_threshold()[:2], STREAM_GC_OLDEST_THRESHOLD)
