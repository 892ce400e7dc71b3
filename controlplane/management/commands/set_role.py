from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Role, Source
from controlplane.services import set_user_role


class Command(BaseCommand):
    help = "Give an existing user a role (audited, like a change on the Users page)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="The user's login (their email address)")
        parser.add_argument("role", help=f"One of: {', '.join(Role.values)}")
        parser.add_argument("--reason", default="", help="Why, for the audit log")

    def handle(self, *args: Any, **options: Any) -> None:
        email, role = options["email"].strip(), options["role"].strip().lower()
        user = get_user_model().objects.filter(username__iexact=email).first()
        if user is None:
            raise CommandError(f"No user logs in as '{email}'. Create them on the Users page first.")
        try:
            set_user_role(
                user=user,
                role=role,
                reason=options["reason"],
                actor=Actor.system("manage.py").with_source(Source.CLI),
            )
        except DomainError as exc:
            details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
            raise CommandError(f"{exc.detail} {details}".strip()) from exc
        self.stdout.write(f"{user.get_username()} is now {Role(role).label}.")
