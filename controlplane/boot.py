"""What a web process, or a Celery pool process, does once before its first request or task."""

from __future__ import annotations

import gc

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import get_resolver


def prepare_web_process() -> None:
    """Check the settings a web process needs, import every view, then freeze the heap.

    - SECRET_KEY: fail at boot rather than at the first request that signs a session or token.
    - The URLconf is loaded now (every view module, DRF, the serving code), not by the first
      request.
    - `gc.freeze()` moves everything loaded so far (a few hundred thousand long-lived objects)
      out of the cyclic collector's reach. Requests leave cyclic garbage, so the collector runs
      all the time; without the freeze each full collection walks the whole heap and holds the
      GIL for hundreds of milliseconds, stalling every request of the process.
    """
    if not settings.SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off")
    get_resolver().url_patterns  # noqa: B018 (imports the views)
    gc.collect()
    gc.freeze()


def prepare_worker_process() -> None:
    """Freeze the heap of a Celery pool process after the fork, before its first task.

    The pool's parent imported the tasks (Django, the SDK, every app) before forking. As in a web
    process, a full collection would walk all of it holding the GIL, stalling every thread of the
    process (an eval run's calls in flight); in a forked child it also writes to, hence copies,
    every page of the parent's heap. `gc.freeze()` moves those objects out of the collector's
    reach without touching them (so no `gc.collect()` first: that would touch the whole heap).
    """
    gc.freeze()
