from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Source
from flags.services import refresh_model_catalog


class Command(BaseCommand):
    help = "Refresh the model catalog (lifecycle, retirement dates, limits) from the Models API."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            changes = refresh_model_catalog(
                actor=Actor.system("manage.py sync_models").with_source(Source.CLI)
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        for kind in ("added", "changed", "repriced"):
            ids = changes.get(kind, [])
            self.stdout.write(f"{kind}: {len(ids)}" + (f" ({', '.join(ids)})" if ids else ""))
