"""Request parsers shared by every API view."""

from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from controlplane.errors import InvalidInput
from flagstaff.nesting import render_path, too_deep, too_deep_message


def nested_too_deeply(path: str, limit: int) -> InvalidInput:
    message = too_deep_message(limit)
    return InvalidInput(message, code="nested_too_deeply", errors=[{"path": path, "message": message}])


class NestingSafeJSONParser(JSONParser):
    """JSON nested deeper than FLAGSTAFF_MAX_JSON_DEPTH is refused (400, with the path) before a
    serializer, validator or the audit log recurses into it; deeper than Python's own parser
    goes, it is refused the same way, at the top."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.FLAGSTAFF_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise nested_too_deeply("", limit) from None
        path = too_deep(data, limit)
        if path is not None:
            raise nested_too_deeply(render_path(path), limit)
        return data
