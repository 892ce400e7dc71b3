"""A fake Anthropic API on loopback for tests and the demo, driven by the real SDK.

Start a `FakeAnthropic`, point `anthropic.Anthropic(base_url=fake.base_url)` (or a plain
HTTP client for the Admin reports) at it, set its state, and assert on `fake.requests`.
Shapes follow /work/shared/reference/anthropic-api.md.
"""

from tests.fakes.anthropic.models import default_models, model_info
from tests.fakes.anthropic.reports import cost_result, report_bucket, usage_result
from tests.fakes.anthropic.server import DEFAULT_ADMIN_KEY, DEFAULT_API_KEY, FakeAnthropic
from tests.fakes.anthropic.wire import RecordedRequest

__all__ = [
    "DEFAULT_ADMIN_KEY",
    "DEFAULT_API_KEY",
    "FakeAnthropic",
    "RecordedRequest",
    "cost_result",
    "default_models",
    "model_info",
    "report_bucket",
    "usage_result",
]
