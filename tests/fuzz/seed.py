"""Seed the fuzz run's fresh database: one of everything the API serves (the data set of the
link-walking UI test), and two tokens, one with every scope and one read-only. Prints the tokens'
secrets as JSON on its last line."""

from __future__ import annotations

import json

import django


def main() -> None:
    django.setup()
    from controlplane.audit import Actor
    from controlplane.models import Scope
    from controlplane.services import create_api_token
    from flags.models import Environment
    from tests.ui.test_every_link import one_of_everything

    actor = Actor.system("fuzz")
    one_of_everything()
    admin = create_api_token(name="fuzz-admin", scopes=Scope.values, actor=actor)
    read = create_api_token(name="fuzz-read", scopes=[Scope.READ], actor=actor)
    # OFREP answers only an environment-bound token (the environment is the token's).
    serving = create_api_token(
        name="fuzz-serving",
        scopes=[Scope.RESOLVE, Scope.TELEMETRY],
        actor=actor,
        environment=Environment.objects.get(key="production"),
    )
    print(json.dumps({"admin": admin.secret, "read": read.secret, "serving": serving.secret}))


if __name__ == "__main__":
    main()
