import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.deprecations.factories import serve, set_lifecycle

pytestmark = pytest.mark.django_db


def report(*args: str) -> str:
    out = StringIO()
    call_command("deprecation_report", *args, stdout=out)
    return out.getvalue()


def test_deprecation_report__text__model_runway_and_where_it_is_used() -> None:
    served = serve("claude-opus-5", key="support-chat")
    retires = timezone.now().date() + timedelta(days=9)
    set_lifecycle("claude-opus-5", "deprecated", retires)

    text = report()

    runway = f"retires in 9 days ({retires.isoformat()}); replacement claude-opus-5-5"
    assert f"claude-opus-5 (deprecated, medium): {runway}" in text
    assert f"  support-chat @ {served.environment.key}: serving version v1 model (" in text


def test_deprecation_report__json__the_api_shape() -> None:
    serve("claude-opus-5", key="support-chat")
    set_lifecycle("claude-opus-5", "deprecated", timezone.now().date() + timedelta(days=9))

    document = json.loads(report("--json"))

    model = next(m for m in document["models"] if m["model"] == "claude-opus-5")
    assert (model["days_left"], model["threshold_days"], model["exposures"][0]["flag"]) == (
        9,
        14,
        "support-chat",
    )
