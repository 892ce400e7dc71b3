from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"

    def ready(self) -> None:
        # flags files and applies four-eyes approvals but never imports rollouts: the rollout
        # verbs join from here.
        from rollouts.services.approvals import register_actions

        register_actions()
        # flags cannot import rollouts, so the flag pages learn from here which split is a
        # rollout's canary (and at which stage) or an experiment's.
        from flags import split_owners
        from rollouts.status import describe_splits

        split_owners.register("rollouts", describe_splits)
