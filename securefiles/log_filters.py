"""Keep share-link tokens and personal access tokens out of logs.

A link's token is its only secret and it sits in the URL path (/s/<token>/), which web
servers and Django log by default: "Not Found: /s/...", runserver's request lines,
gunicorn's access log. Everything that logs a path goes through `redact`.

An access token belongs in the Authorization header, which nothing logs; but a client
that puts one in the query string or a path (refused with 401) would have it written
into the access log. Its secret part is cut there too; its public prefix stays.
"""

import logging
import re
from functools import lru_cache
from urllib.parse import unquote

from django.conf import settings

# A run of URL characters holding a percent-escape: `/s%2F<token>/` and `/%73/<token>/`
# reach the link view too (the server decodes the path before routing), so a run is
# judged by what it decodes to, not by how it was spelled.
_ESCAPED_RUN = re.compile(r"[^\s\"']*%[0-9A-Fa-f]{2}[^\s\"']*")


def _decoded(run: str) -> str:
    # Decoded until stable (at most a few rounds): a proxy in front may decode once more.
    for _ in range(3):
        once = unquote(run)
        if once == run:
            break
        run = once
    return run


# What a log line must never carry raw: controls (a newline forges a line, ESC drives the
# terminal reading the log, NUL makes grep call it binary), spaces, quotes, backslashes.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\"\\]")


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


@lru_cache(maxsize=1)
def _link_path() -> tuple[str, re.Pattern[str]]:
    """The links' path prefix ("/s/", settings.LINK_PATH, which sharing.urls routes too)
    and the pattern of a link path in a line."""
    prefix = "/" + settings.LINK_PATH.strip("/") + "/"
    return prefix, re.compile(re.escape(prefix) + r"[^/\s?\"']+")


# An access token (accounts.selectors.TOKEN_RE: "sf_" + 8 of public prefix + 43 of
# secret), or a truncated one holding a good part of its secret: the prefix is kept, so
# an operator still sees which token a client misused.
_ACCESS_TOKEN = re.compile(r"sf_([A-Za-z0-9_-]{8})[A-Za-z0-9_-]{16,}", re.ASCII)
ACCESS_TOKEN_MARK = "sf_"  # noqa: S105 (the tokens' public mark, not a secret)


def _redact_plain(text: str) -> str:
    if ACCESS_TOKEN_MARK in text:
        text = _ACCESS_TOKEN.sub(r"sf_\1<secret>", text)
    prefix, pattern = _link_path()
    return pattern.sub(prefix + "<token>", text) if prefix in text else text


def _redact_escaped(match: re.Match[str]) -> str:
    decoded = _decoded(match.group())
    if _link_path()[0] not in decoded and ACCESS_TOKEN_MARK not in decoded:
        return match.group()
    # Decoded only to find the token; what goes back into the line is escaped again.
    return _escape(_redact_plain(decoded))


def redact(text: str) -> str:
    """``text`` with every share-link path, however percent-escaped, as /s/<token>, and
    every access token as sf_<prefix><secret>."""
    if "%" in text:
        text = _ESCAPED_RUN.sub(_redact_escaped, text)
    return _redact_plain(text)


class RedactLinkTokens(logging.Filter):
    """A logging filter that rewrites a record's message without link or access tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _link_path()[0] in message or "%" in message or ACCESS_TOKEN_MARK in message:
            record.msg, record.args = redact(message), ()
        return True
