import os

from django.core.asgi import get_asgi_application

from controlplane.boot import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
application = get_asgi_application()
prepare_web_process()
