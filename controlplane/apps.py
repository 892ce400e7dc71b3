from django.apps import AppConfig


class ControlPlaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        # Registers the OpenAPI authentication extensions (drf-spectacular finds them by subclass).
        from controlplane import schema  # noqa: F401
