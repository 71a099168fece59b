"""Keep share-link, invitation and password-reset tokens, and personal access tokens, out
of logs.

Each link token is the only secret of its link and sits in the URL path (/s/<token>/,
/accounts/invitation/<token>/, /accounts/reset/<uidb64>/<token>/), which web servers and
Django log by default: "Not Found: /s/...", runserver's request lines, gunicorn's access
log. Whoever reads an invitation or reset token first can choose the account's password.
Everything that logs a path goes through `redact`.

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


# The account links' secret paths (accounts.urls, mounted at /accounts/ by
# securefiles.urls), each prefix with what follows it up to the token's end; the pages
# they redirect to ("accept/", "done/") carry no secret and stay readable.
_ACCOUNT_SECRET_PATHS = (
    ("/r/", r"[^/\s?\"']+"),  # file requests (filerequests.urls)
    ("/accounts/invitation/", r"(?!accept/)[^/\s?\"']+"),
    ("/accounts/reset/", r"(?!done/)[^/\s?\"']+/[^/\s?\"']+"),
)


@lru_cache(maxsize=1)
def _secret_paths() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each secret-bearing path prefix (the links' first: "/s/", settings.LINK_PATH, which
    sharing.urls routes too) and the pattern of such a path in a line."""
    link_prefix = "/" + settings.LINK_PATH.strip("/") + "/"
    prefixes = ((link_prefix, r"[^/\s?\"']+"), *_ACCOUNT_SECRET_PATHS)
    return tuple((prefix, re.compile(re.escape(prefix) + rest)) for prefix, rest in prefixes)


def _has_secret_path(text: str) -> bool:
    return any(prefix in text for prefix, _pattern in _secret_paths())


# An access token (accounts.selectors.TOKEN_RE: "sf_" + 8 of public prefix + 43 of
# secret), or a truncated one holding a good part of its secret: the prefix is kept, so
# an operator still sees which token a client misused.
_ACCESS_TOKEN = re.compile(r"sf_([A-Za-z0-9_-]{8})[A-Za-z0-9_-]{16,}", re.ASCII)
ACCESS_TOKEN_MARK = "sf_"  # noqa: S105 (the tokens' public mark, not a secret)


def _redact_plain(text: str) -> str:
    if ACCESS_TOKEN_MARK in text:
        text = _ACCESS_TOKEN.sub(r"sf_\1<secret>", text)
    for prefix, pattern in _secret_paths():
        if prefix in text:
            text = pattern.sub(prefix + "<token>", text)
    return text


def _redact_escaped(match: re.Match[str]) -> str:
    decoded = _decoded(match.group())
    if not _has_secret_path(decoded) and ACCESS_TOKEN_MARK not in decoded:
        return match.group()
    # Decoded only to find the token; what goes back into the line is escaped again.
    return _escape(_redact_plain(decoded))


def redact(text: str) -> str:
    """``text`` with every secret-bearing path (a share link, an invitation, a password
    reset), however percent-escaped, as its prefix followed by ``<token>``, and every
    access token as sf_<prefix><secret>."""
    if "%" in text:
        text = _ESCAPED_RUN.sub(_redact_escaped, text)
    return _redact_plain(text)


class RedactLinkTokens(logging.Filter):
    """A logging filter that rewrites a record's message without link, invitation,
    password-reset or access tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "%" in message or _has_secret_path(message) or ACCESS_TOKEN_MARK in message:
            record.msg, record.args = redact(message), ()
        return True
