"""controlplane.redaction: stream tickets kept out of log lines."""

import logging

import pytest

from controlplane.redaction import RedactUrlCredentials, redact_url_credentials


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ('"GET /s?ticket=abc.def:ghi HTTP/1.1" 200', '"GET /s?ticket=[redacted] HTTP/1.1" 200'),
        ("/s?format=ofrep&ticket=abc&last_event_id=3", "/s?format=ofrep&ticket=[redacted]&last_event_id=3"),
        ("ticket=abc&format=ofrep", "ticket=[redacted]&format=ofrep"),
        ("/s?TICKET=abc", "/s?TICKET=[redacted]"),
        ("/s?myticket=abc", "/s?myticket=abc"),
    ],
)
def test_redact_url_credentials__ticket_parameter__value_replaced(text: str, redacted: str) -> None:
    assert redact_url_credentials(text) == redacted


def test_console_handler__django_logging__redacts_tickets_in_messages() -> None:
    [handler] = [
        h for h in logging.getLogger().handlers if any(isinstance(f, RedactUrlCredentials) for f in h.filters)
    ]
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s', ("GET /s?ticket=abc HTTP/1.1", 200), None
    )

    handler.filter(record)

    assert record.getMessage() == '"GET /s?ticket=[redacted] HTTP/1.1" 200'
