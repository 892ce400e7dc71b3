from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"

    def ready(self) -> None:
        # flags files and applies four-eyes approvals but never imports rollouts: the rollout
        # verbs join from here.
        from rollouts.services.approvals import register_actions

        register_actions()
