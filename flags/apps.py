from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _seed_model_catalog(sender: AppConfig, **kwargs: Any) -> None:
    from flags.catalog import seed_catalog

    seed_catalog()


class FlagsConfig(AppConfig):
    name = "flags"

    def ready(self) -> None:
        # The catalog seed is data that grows with the code (new models, new prices), so it is
        # applied after every migrate rather than frozen into one data migration.
        post_migrate.connect(_seed_model_catalog, sender=self)
        # Registers the serving routes' OpenAPI authentication extensions.
        from flags.serving import schema  # noqa: F401
