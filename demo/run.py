"""One play of the demo against a running Flagstaff: seed, gate, canaries, traffic, narration.

The narration is what a person reads in the terminal while the pages update: each step in
words, and every decision of the analysis in its own words (a hold at most every
`HOLD_REPEAT_SECONDS` per rollout, every other decision at once).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import anthropic
from django.urls import reverse

from controlplane.services import ensure_admin
from demo import scenario, seed
from demo.fake_anthropic import DEFAULT_API_KEY
from demo.traffic import Traffic
from evals.models import EvalRun
from flagstaff import Flagstaff
from rollouts.models import TERMINAL_STATES, Decision, Rollout

GATE_TIMEOUT_SECONDS = 300.0
HOLD_REPEAT_SECONDS = 15.0
POLL_SECONDS = 1.0
# Users outside the canary and control arms who make a call: enough that the baseline keeps
# showing on the dashboards, without spending the machine on calls the analysis never reads.
OTHERS_SHARE = 0.1


class DemoRun:
    def __init__(
        self, *, url: str, anthropic_url: str, stop: threading.Event, say: Callable[[str], None]
    ) -> None:
        self.url = url
        self.anthropic_url = anthropic_url
        self.stop = stop
        self.say = say

    def play(self, *, min_stage_seconds: int, users_per_second: float) -> None:
        """Seed, gate and start the canaries, then run the traffic until `stop` is set."""
        login = ensure_admin(email=seed.DEMO_ADMIN, password=None)
        self.say("Seeding the support-chat flag, its eval set and three versions ...")
        flag = seed.seed_flag()
        started = seed.start_gate_runs(flag)
        if not self._wait_for_gate(started):
            return
        rollouts = seed.start_canaries(flag, min_duration_seconds=min_stage_seconds, min_per_arm=100)
        self.say("")
        self.say(f"Flagstaff demo is running at {self.url}/")
        if login.password:
            self.say(f"Log in as {login.email} with password {login.password}")
        else:
            self.say(f"Log in as {login.email} (its password was shown when the demo first created it)")
        for rollout, canary in zip(rollouts, seed.CANARIES, strict=True):
            page = self.url + reverse("rollouts:detail", args=[rollout.pk])
            self.say(f"  {canary.environment}: canary of v{canary.candidate} ({canary.story}): {page}")
        self.say("Ctrl-C stops everything.")
        self.say("")
        with ExitStack() as stack:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flagstaff-demo-")))
            sdk = stack.enter_context(
                anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=self.anthropic_url, max_retries=2)
            )
            threads = []
            for canary in seed.CANARIES:
                client = stack.enter_context(
                    Flagstaff(
                        url=self.url,
                        token=seed.service_token(canary.environment),
                        environment=canary.environment,
                        cache_path=cache_dir / f"{canary.environment}.json",
                        anthropic_client=sdk,
                        telemetry=True,
                        sample_rates={scenario.FLAG: 1.0},
                    )
                )
                traffic = stack.enter_context(Traffic(client, others_share=OTHERS_SHARE))
                thread = threading.Thread(
                    target=traffic.run,
                    args=(self.stop,),
                    kwargs={"users_per_second": users_per_second},
                    name=f"demo-traffic-{canary.environment}",
                )
                thread.start()
                threads.append(thread)
            try:
                self._narrate([rollout.pk for rollout in rollouts])
            finally:
                self.stop.set()
                for thread in threads:
                    thread.join()

    def _wait_for_gate(self, started: list[EvalRun]) -> bool:
        self.say(
            "The eval gate runs the eval set on every version (the worker calls the fake Anthropic API) ..."
        )
        deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
        reported = -1
        while not self.stop.is_set():
            done, total = seed.runs_finished(started)
            if done != reported:
                self.say(f"  eval runs finished: {done} of {total}")
                reported = done
            if done == total:
                return True
            if time.monotonic() > deadline:
                raise RuntimeError(f"the eval runs did not finish within {GATE_TIMEOUT_SECONDS:.0f} s")
            self.stop.wait(POLL_SECONDS)
        return False

    def _narrate(self, rollout_ids: list[int]) -> None:
        """Print each decision as it is taken; say so once every rollout has settled."""
        last_seen = 0
        last_hold: dict[int, float] = {}
        settled = False
        while not self.stop.wait(POLL_SECONDS):
            decisions = (
                Decision.objects.filter(rollout_id__in=rollout_ids, pk__gt=last_seen)
                .select_related("rollout__environment", "rollout__candidate", "stage")
                .order_by("pk")
            )
            for decision in decisions:
                last_seen = decision.pk
                if decision.action == "hold":
                    if time.monotonic() - last_hold.get(decision.rollout_id, 0.0) < HOLD_REPEAT_SECONDS:
                        continue
                    last_hold[decision.rollout_id] = time.monotonic()
                self.say(describe(decision))
            if not settled:
                states = dict(Rollout.objects.filter(pk__in=rollout_ids).values_list("pk", "state"))
                if all(state in TERMINAL_STATES for state in states.values()):
                    settled = True
                    self.say("")
                    self.say(
                        "Both canaries have settled: "
                        + "; ".join(f"rollout {pk} {state.replace('_', ' ')}" for pk, state in states.items())
                        + ". Traffic keeps flowing; Ctrl-C stops everything."
                    )


def describe(decision: Decision) -> str:
    rollout = decision.rollout
    weight = decision.stage.weight / 100
    return (
        f"[{rollout.environment.key}] v{rollout.candidate.number} at {weight:g} %, tick {decision.tick}: "
        f"{decision.explanation}"
    )
