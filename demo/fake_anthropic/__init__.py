"""A fake Anthropic API on loopback for tests and the demo, driven by the real SDK.

Start a `FakeAnthropic`, point `anthropic.Anthropic(base_url=fake.base_url)` (or a plain
HTTP client for the Admin reports) at it, set its state, and assert on `fake.requests`.
Shapes follow /work/shared/reference/anthropic-api.md.
"""

from demo.fake_anthropic.models import default_models, model_info
from demo.fake_anthropic.reports import cost_result, report_bucket, usage_result
from demo.fake_anthropic.server import DEFAULT_ADMIN_KEY, DEFAULT_API_KEY, FakeAnthropic
from demo.fake_anthropic.wire import RecordedRequest

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
