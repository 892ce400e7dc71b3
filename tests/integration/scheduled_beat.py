"""The Celery app that `celery beat` runs in the scheduled-changes test: the project's app with
its beat schedule narrowed to the project's own scheduled-changes entry, sent every
SCHEDULED_BEAT_SECONDS to the queue SCHEDULED_BEAT_QUEUE, so that the test's workers get the
messages and no other test's do."""

import os

from django.conf import settings

from controlplane.celery import app

ENTRY = "apply-scheduled-changes"

app.conf.beat_schedule = {
    ENTRY: {
        **settings.CELERY_BEAT_SCHEDULE[ENTRY],
        "schedule": float(os.environ["SCHEDULED_BEAT_SECONDS"]),
        "options": {"queue": os.environ["SCHEDULED_BEAT_QUEUE"]},
    }
}
