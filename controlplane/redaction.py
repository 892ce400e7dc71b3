"""Credentials that travel in URLs, kept out of logs: the change stream's `?ticket=`.

Pure Python (no Django), so that gunicorn's master can load it with its configuration.
"""

from __future__ import annotations

import logging
import re

# A query parameter holding a credential, wherever a URL or query string appears in a line.
_CREDENTIAL_IN_QUERY = re.compile(r"(?i)((?:^|[?&;\s])ticket=)[^&;\s\"']*")
REDACTED = "[redacted]"


def redact_url_credentials(text: str) -> str:
    """`text` with the value of every `ticket=` query parameter replaced by [redacted]."""
    return _CREDENTIAL_IN_QUERY.sub(rf"\1{REDACTED}", text)


class RedactUrlCredentials(logging.Filter):
    """A handler filter: the record's message with URL credentials redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
