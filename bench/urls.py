"""The project's URLs plus `/bench/trivial`, a trivial Django JSON view (the HTTP baseline):
it parses the JSON body, as every JSON endpoint must, and answers `{"ok": true}`. (A view that
left the body unread would make gunicorn drain it before the next request on the connection,
which cost it a third of its throughput here: not a baseline.)

The project's URLconf tries the API (`api/v1/`, where resolve is the first pattern) and the two
OFREP paths first. The trivial view comes right after them, so that it pays the URL resolution
the endpoints it is compared with pay (three patterns or so), not less and not more.
"""

import json

from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, path
from django.views.decorators.csrf import csrf_exempt

from controlplane.urls import handler404, handler500
from controlplane.urls import urlpatterns as project_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]

# Right after api/v1/ and the OFREP paths, wherever the project puts them.
SERVING_PATTERNS = next(
    index
    for index, pattern in enumerate(project_urlpatterns)
    if not str(pattern.pattern).startswith(("api/", "ofrep/"))
)


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    json.loads(request.body or b"{}")
    return JsonResponse({"ok": True})


urlpatterns: list[URLPattern | URLResolver] = [
    *project_urlpatterns[:SERVING_PATTERNS],
    path("bench/trivial", trivial),
    *project_urlpatterns[SERVING_PATTERNS:],
]
