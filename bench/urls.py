"""The project's URLs plus `/bench/trivial`, a trivial Django JSON view (the HTTP baseline).

The trivial view comes last, after every project pattern (where the OFREP routes are too), so
that it pays the same URL resolution as the endpoints it is compared with, not less.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from controlplane.urls import handler404, handler500
from controlplane.urls import urlpatterns as project_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [*project_urlpatterns, path("bench/trivial", trivial)]
