from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import verify_chain


class Command(BaseCommand):
    help = "Walk the audit chain; exit non-zero and name the first broken entry if it was altered."

    def handle(self, *args: Any, **options: Any) -> None:
        status = verify_chain()
        if not status.ok:
            where = f"entry #{status.first_broken_id}" if status.first_broken_id else "the end of the chain"
            raise CommandError(
                f"Audit chain broken at {where}: {status.problem} "
                f"({status.checked} entries verified before it)"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {status.checked} entries verified."))
