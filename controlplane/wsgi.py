import os

from django.core.wsgi import get_wsgi_application

from controlplane.boot import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
application = get_wsgi_application()
prepare_web_process()
