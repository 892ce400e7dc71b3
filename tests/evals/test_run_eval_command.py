import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from demo.fake_anthropic import FakeAnthropic
from evals.models import EvalRun, RunState
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.factories import make_version

pytestmark = pytest.mark.django_db
CONTENT: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 100}


def test_run_eval__messages__runs_here_and_prints_progress_and_pass_rate(
    fake_anthropic: FakeAnthropic,
) -> None:
    version = make_version(content=CONTENT)
    eval_set_version = make_eval_set_version(4, scorers=[{"name": "contains"}])
    fake_anthropic.script_reply(marker(0), "answer 0")
    out = io.StringIO()

    with anthropic_at(fake_anthropic):
        call_command(
            "run_eval", flag=version.flag.key, version=1, eval_set=eval_set_version.eval_set.key, stdout=out
        )

    run = EvalRun.objects.get()
    assert run.state == RunState.SUCCEEDED
    assert "[" + "#" * 30 + "] 4/4 100%" in out.getvalue()
    assert "pass rate 25.0%" in out.getvalue()


def test_run_eval__batch__waits_for_the_batch(fake_anthropic: FakeAnthropic) -> None:
    version = make_version(content=CONTENT)
    eval_set_version = make_eval_set_version(2)

    with anthropic_at(fake_anthropic, FLAGSTAFF_EVAL_BATCH_POLL_SECONDS=1):
        fake_anthropic.batch_delay = 0.5
        call_command(
            "run_eval", "--batch", flag=version.flag.key, version=1, eval_set=eval_set_version.eval_set.key,
            stdout=io.StringIO(),
        )  # fmt: skip

    run = EvalRun.objects.get()
    assert run.mode == "batch"
    assert run.state == RunState.SUCCEEDED
    assert run.cases_done == 2


def test_run_eval__unknown_flag__command_error_naming_it() -> None:
    with pytest.raises(CommandError, match="nope"):
        call_command("run_eval", flag="nope", version=1, eval_set="x", stdout=io.StringIO())


def test_run_eval__no_api_key__fails_with_the_reason(fake_anthropic: FakeAnthropic) -> None:
    version = make_version(content=CONTENT)
    eval_set_version = make_eval_set_version(1)
    out = io.StringIO()

    with anthropic_at(fake_anthropic, ANTHROPIC_API_KEY=""), pytest.raises(CommandError, match="failed"):
        call_command(
            "run_eval", flag=version.flag.key, version=1, eval_set=eval_set_version.eval_set.key, stdout=out
        )

    assert "ANTHROPIC_API_KEY" in out.getvalue()
