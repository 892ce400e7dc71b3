import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from controlplane.services import ensure_admin


class Command(BaseCommand):
    help = "Create the first administrator from FLAGSTAFF_ADMIN_EMAIL/FLAGSTAFF_ADMIN_PASSWORD if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        configured = os.environ.get("FLAGSTAFF_ADMIN_EMAIL")
        if not configured and (existing := get_user_model().objects.filter(is_superuser=True).first()):
            # No account asked for, and an administrator exists: nothing to bootstrap.
            self.stdout.write(f"Log in as {existing.get_username()}.")
            return
        email = configured or "admin@flagstaff.local"
        result = ensure_admin(email=email, password=os.environ.get("FLAGSTAFF_ADMIN_PASSWORD") or None)
        if result.password:
            self.stdout.write(f"Log in as {result.email} with the generated password: {result.password}")
            self.stdout.write("(shown once; set FLAGSTAFF_ADMIN_PASSWORD to choose your own)")
        elif result.created:
            self.stdout.write(f"Log in as {result.email} with FLAGSTAFF_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Log in as {result.email}.")
