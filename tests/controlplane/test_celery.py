"""The Celery app finds every task beat refers to, from each app's one tasks.py."""

from django.conf import settings

from controlplane.celery import app


def test_beat_schedule__every_entry__names_a_task_the_worker_registers() -> None:
    app.loader.import_default_modules()

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
