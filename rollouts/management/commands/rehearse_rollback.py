"""`manage.py rehearse_rollback FLAG [ENV]`: a rollback rehearsal, run here and reported."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.errors import DomainError
from flags.lookups import get_environment, get_flag
from rollouts.management.commands.rollback import cli_actor
from rollouts.models import RehearsalState
from rollouts.services import rehearsals


class Command(BaseCommand):
    help = (
        "Rehearse the one-motion rollback of a flag: a small canary of a no-op candidate, rolled back, "
        "with its propagation to the API, the change streams and a probe client measured. Runs in "
        "this process (a worker may take it first) and exits 1 when the rehearsal fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("flag", help="Flag key")
        parser.add_argument(
            "environment", nargs="?", help="Environment key (default: FLAGSTAFF_REHEARSAL_ENVIRONMENT)"
        )
        parser.add_argument("--reason", default="", help="Why; kept in the audit log")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            flag = get_flag(options["flag"])
            environment = (
                get_environment(options["environment"])
                if options["environment"]
                else rehearsals.default_environment()
            )
            requested = rehearsals.request_rehearsal(
                flag=flag,
                environment=environment,
                actor=cli_actor("rehearse_rollback"),
                reason=options["reason"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        rehearsal = rehearsals.run_rehearsal(rehearsal_id=requested.pk)
        assert rehearsal is not None
        if rehearsal.state == RehearsalState.RUNNING:
            self.stdout.write(
                f"Rehearsal {rehearsal.pk} was taken by a worker; follow it on the flag's page."
            )
            return
        self.stdout.write(f"Rehearsal {rehearsal.pk}: {rehearsal.outcome}")
        if rehearsal.state != RehearsalState.PASSED:
            raise CommandError(f"rehearsal {rehearsal.pk} failed")
