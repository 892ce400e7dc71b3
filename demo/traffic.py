"""The traffic simulator: a service's users calling Claude through the `flagstaff` client.

Each simulated user is a unit (`targetingKey` `user-N`). The client resolves the flag locally
from its snapshot, as a service does; `fs.messages.create` calls the (fake) Anthropic API with
the resolved config through the real SDK and queues the call's record, with its sample for live
scoring, on the client's telemetry sender, which posts them in batches. Calls go out from a
thread pool, as a service's request threads would, so a batch of calls takes the time of its
slowest few rather than of all of them in a row.

Resolving is local and cheap; a Claude call is not. Users outside a rollout's analysis (neither
canary nor control: the baseline arm, or no split at all) are resolved and counted, and make a
call only with probability `others_share`: they are the bulk of a real service's traffic but
tell the analysis nothing.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Self

import anthropic

from demo import scenario
from flagstaff import Flagstaff

logger = logging.getLogger(__name__)

ANALYSED_ARMS = ("candidate", "control")


class Traffic:
    """Simulated users of one environment; `send_until` for tests, `run` for the demo."""

    def __init__(
        self, client: Flagstaff, *, flag: str = scenario.FLAG, threads: int = 8, others_share: float = 1.0
    ) -> None:
        self.client = client
        self.flag = flag
        self.others_share = others_share
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"traffic-{client.environment}"
        )
        self._units = itertools.count()
        self._random = random.Random()
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # per arm ("" outside any split)
        self.failures: Counter[str] = Counter()  # per exception type

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def send_until(
        self, per_arm: int, *, arms: Iterable[str] = ANALYSED_ARMS, max_users: int = 1_000_000
    ) -> Counter[str]:
        """Let users arrive until each of `arms` has made `per_arm` calls; wait for every call.

        Returns the calls made per arm. Raises RuntimeError when `max_users` arrive first (an arm
        the flag does not serve: no split, or a split without it).
        """
        wanted = dict.fromkeys(arms, per_arm)
        made: Counter[str] = Counter()
        futures: list[Future[None]] = []
        for _ in range(max_users):
            if all(made[arm] >= count for arm, count in wanted.items()):
                break
            arm, future = self._arrive(skip_analysed=lambda a: made[a] >= wanted.get(a, 0))
            if future is not None:
                made[arm] += 1
                futures.append(future)
        else:
            raise RuntimeError(f"{max_users} users arrived and the calls per arm are still {dict(made)}")
        wait(futures)
        for future in futures:
            future.result()
        return made

    def run(self, stop: threading.Event, *, users_per_second: float) -> None:
        """Let about `users_per_second` users arrive until `stop` is set (the demo's loop)."""
        interval = 1.0 / users_per_second
        pending: list[Future[None]] = []
        while not stop.wait(interval):
            _, future = self._arrive()
            if future is not None:
                pending.append(future)
            if len(pending) > 256:  # keep the backlog bounded: a slow server slows the users
                wait(pending[:128])
                pending = [f for f in pending if not f.done()]
        wait(pending)

    def _arrive(self, skip_analysed: Callable[[str], bool] | None = None) -> tuple[str, Future[None] | None]:
        """One user arrives: resolve, and call unless this user's arm has no use for it."""
        unit = next(self._units)
        context = {"targetingKey": f"user-{unit}"}
        arm = self.client.resolve(self.flag, context).arm or ""
        if arm in ANALYSED_ARMS:
            if skip_analysed is not None and skip_analysed(arm):
                return arm, None
        elif self._random.random() >= self.others_share:
            return arm, None
        return arm, self._pool.submit(self._call, unit, context, arm)

    def _call(self, unit: int, context: dict[str, str], arm: str) -> None:
        try:
            self.client.messages.create(
                flag=self.flag,
                context=context,
                messages=[{"role": "user", "content": scenario.question(unit)}],
            )
        except anthropic.APIError as error:  # recorded as telemetry by the client already
            with self._lock:
                self.failures[type(error).__name__] += 1
            logger.info("call of %s failed: %s", context["targetingKey"], error)
        with self._lock:
            self.calls[arm] += 1
