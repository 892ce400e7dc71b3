import os

from django.core.wsgi import get_wsgi_application

from controlplane.boot import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402

from flags.serving.wsgi import ServingFastPath  # noqa: E402 (imports models: after django.setup())
from telemetry.api.calls import CallsView  # noqa: E402

application = ServingFastPath(
    django_application,
    more={"/api/v1/telemetry/calls": (CallsView.quick, lambda: settings.FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES)},
)
prepare_web_process()
