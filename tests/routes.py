"""Every route of the REST API, read from the URL resolver, for tests that must cover them all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView


@dataclass(frozen=True)
class Route:
    name: str
    view: type[APIView]
    kwarg_names: tuple[str, ...]

    def allowed_methods(self) -> list[str]:
        """The methods the view has a handler for (HEAD and OPTIONS, which follow GET, aside)."""
        return [
            method
            for method in self.view.http_method_names
            if method not in {"head", "options", "trace"} and hasattr(self.view, method)
        ]

    def is_paginated_list(self) -> bool:
        return "get" in self.allowed_methods() and getattr(self.view, "pagination_class", None) is not None


def _walk(patterns: list[Any], namespace: str) -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            assert view is not None, f"{pattern.name} is not a class-based API view"
            yield Route(f"{namespace}:{pattern.name}", view, tuple(pattern.pattern.converters))


def api_routes() -> list[Route]:
    api = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "api")
    return list(_walk(api.url_patterns, "api"))
