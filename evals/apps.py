from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"

    def ready(self) -> None:
        # flags cannot import evals, so the gate joins the checks publishing asks from here.
        from evals.services import gate
        from flags.services import preconditions

        preconditions.register(gate.CHECK_NAME, gate.check_serving)
