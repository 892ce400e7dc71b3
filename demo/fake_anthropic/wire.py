"""Wire-level pieces shared by the endpoints: recorded requests, API errors, query params."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]
Query: TypeAlias = dict[str, list[str]]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    "rate_limit_error": "Number of request tokens has exceeded your rate limit",
    "overloaded_error": "Overloaded",
    "authentication_error": "invalid x-api-key",
    "api_error": "Internal server error",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Query
    headers: dict[str, str]  # lower-cased names
    body: Any  # decoded JSON, the raw text when it was not JSON, or None


class ApiError(Exception):
    """An error answer in the API's shape; `status` 200 marks a mid-stream error."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.message = message or ERROR_MESSAGES.get(self.error_type, self.error_type)
        self.headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        super().__init__(self.message)

    def error(self) -> JSON:
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}


def one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def int_param(query: Query, name: str, *, default: int, maximum: int) -> int:
    raw = one(query, name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(400, f"{name}: Input should be an integer from 1 to {maximum}")
    return int(raw)


def time_param(query: Query, name: str) -> datetime | None:
    raw = one(query, name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(400, f"{name}: Input should be a valid RFC 3339 datetime")
    return moment
