"""Core pages: health, error handlers (JSON under /api/), and the audit and token pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from controlplane.health import database_ok


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    ok = database_ok()
    return JsonResponse({"status": "ok" if ok else "unavailable", "database": ok}, status=200 if ok else 503)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/ofrep/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": "No such endpoint."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something went wrong on our side."}, status=500
        )
    return render(request, "500.html", status=500)
