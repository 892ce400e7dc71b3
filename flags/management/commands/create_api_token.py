from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Scope, Source
from controlplane.services import create_api_token
from flags.lookups import get_environment


class Command(BaseCommand):
    help = "Create an API token and print its secret (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {', '.join(Scope.values)}")
        parser.add_argument("--environment", help="Bind the token to one environment (by key)")

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        try:
            environment = get_environment(options["environment"]) if options["environment"] else None
            issued = create_api_token(
                name=options["name"],
                scopes=scopes,
                environment=environment,
                actor=Actor.system("manage.py").with_source(Source.CLI),
            )
        except DomainError as exc:
            details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
            raise CommandError(f"{exc.detail} {details}".strip()) from exc
        self.stdout.write(issued.secret)
