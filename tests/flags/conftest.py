"""Fixtures the serving tests share: the `production` environment and the `support-chat` flag
served in it (v1 published and enabled; v2 and v3 unpublished)."""

import pytest

from flags.models import Environment
from tests.factories import make_environment
from tests.flags.serving_helpers import Served, served_flag


@pytest.fixture
def production() -> Environment:
    return make_environment(key="production")


@pytest.fixture
def chat(production: Environment) -> Served:
    return served_flag(production, key="support-chat")
