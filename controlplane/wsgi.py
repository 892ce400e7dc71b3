import os

from django.core.wsgi import get_wsgi_application

from controlplane.boot import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
django_application = get_wsgi_application()

from flags.serving.wsgi import ServingFastPath  # noqa: E402 (imports models: after django.setup())

application = ServingFastPath(django_application)
prepare_web_process()
