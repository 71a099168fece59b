"""Keep share-link tokens out of logs.

A link's token is its only secret and it sits in the URL path (/s/<token>/), which web
servers and Django log by default: "Not Found: /s/...", runserver's request lines,
gunicorn's access log. Everything that logs a path goes through `redact`.
"""

import logging
import re

_LINK_PATH = re.compile(r"/s/[^/\s?\"']+")


def redact(text: str) -> str:
    """Replace every /s/<token> in ``text`` with /s/<token>."""
    return _LINK_PATH.sub("/s/<token>", text) if "/s/" in text else text


class RedactLinkTokens(logging.Filter):
    """A logging filter that rewrites a record's message without link tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/s/" in message:
            record.msg, record.args = redact(message), ()
        return True
