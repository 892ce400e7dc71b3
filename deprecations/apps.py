from django.apps import AppConfig


class DeprecationsConfig(AppConfig):
    name = "deprecations"

    def ready(self) -> None:
        from deprecations import tasks
        from flags.services.catalog import catalog_synced

        # Re-check every runway after a catalog sync that changed something (the Models API
        # sync runs every 6 hours); dispatch_uid keeps a repeated ready() from connecting twice.
        catalog_synced.connect(tasks.after_catalog_sync, dispatch_uid="deprecations.after_catalog_sync")
