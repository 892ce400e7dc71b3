"""The Celery app, configured from Django settings (CELERY_ namespace)."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def prepare_pool_process(**_kwargs: object) -> None:
    """Each pool process, once forked, before its first task (`controlplane.boot`)."""
    from controlplane.boot import prepare_worker_process  # Django is set up by now

    prepare_worker_process()
