"""`manage.py rollback FLAG ENV --reason ...`: the one-motion rollback from a shell."""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Source
from flags.lookups import get_environment, get_flag
from rollouts.services.rollback import roll_back


def cli_actor(command: str) -> Actor:
    """The shell user behind a command, named in the audit log."""
    return Actor.system(f"manage.py {command} ({getpass.getuser()})").with_source(Source.CLI)


class Command(BaseCommand):
    help = (
        "Take a flag's candidate off traffic in an environment now: a running canary rolled back, an "
        "experiment ended, a split cleared, or a rollout's promotion reverted. Opens an incident."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("flag", help="Flag key")
        parser.add_argument("environment", help="Environment key")
        parser.add_argument("--reason", required=True, help="Why; kept in the audit log and the incident")
        parser.add_argument("--json", action="store_true", help="Print what was done as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            done = roll_back(
                flag=get_flag(options["flag"]),
                environment=get_environment(options["environment"]),
                actor=cli_actor("rollback"),
                reason=options["reason"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        if options["json"]:
            self.stdout.write(json.dumps(done.as_dict()))
            return
        self.stdout.write(
            f"Rolled back: {done.summary} Revision {done.revision_before} -> {done.revision_after}"
            + (f"; incident {done.incident} opened." if done.incident else ".")
        )
