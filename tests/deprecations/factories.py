"""A flag serving a watched model, and the catalog moves the deprecation tests make."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from flags import services as flag_services
from flags.catalog import model_info
from flags.models import ClaudeModel, ConfigVersion, Environment, Flag
from flags.validation.catalog import Lifecycle
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version


def content(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 1024, "cache_control": {"type": "ephemeral"}, **extra}


@dataclass
class Served:
    environment: Environment
    flag: Flag
    version: ConfigVersion


def serve(
    model: str, *, environment: Environment | None = None, enabled: bool = True, **flag_fields: Any
) -> Served:
    """A flag whose v1 (on `model`) is published, and enabled unless told otherwise."""
    environment = environment or make_environment()
    flag = make_flag(**flag_fields)
    version = make_version(flag=flag, content=content(model))
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    if enabled:
        flag_services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=FACTORY_ACTOR)
    return Served(environment, flag, version)


def set_lifecycle(model_id: str, lifecycle: Lifecycle, retires_at: date | None) -> None:
    """Move a catalog model through the sync service, as a Models API reading would."""
    row = ClaudeModel.objects.with_prices().get(model_id=model_id)
    moved = replace(model_info(row), lifecycle=lifecycle, retires_at=retires_at)
    flag_services.sync_model_catalog(models=[moved], source="models_api", actor=FACTORY_ACTOR)
