"""How sizes are shown to people: one convention for pages, the admin, e-mails and upload.js.

Binary units with their IEC names: 1 KiB = 1024 bytes, 1 MiB = 1024 KiB, ... The limits
in the settings (MAX_UPLOAD_MB, USER_QUOTA_MB) are MiB too, so a limit and the sizes
measured against it read alike. static/js/upload.js (humanSize) follows the same rule.
"""

from datetime import datetime, timedelta

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timeuntil

# A no-break space keeps a number and its unit on one line ("190.7 MiB").
_SPACE = "\u00a0"
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int) -> str:
    """A byte count as words: "1 byte", "608 bytes", "1.0 KiB", "190.7 MiB", "2.0 GiB".

    ``size`` is in bytes (negative counts as 0). Below 1 KiB the exact count is given;
    from there one decimal of the largest binary unit that keeps the number at least 1.
    """
    size = max(int(size), 0)
    if size < 1024:
        return f"{size}{_SPACE}{'byte' if size == 1 else 'bytes'}"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f}{_SPACE}{unit}"


def exact_bytes(size: int) -> str:
    """The exact byte count with thousands separators: "199,970,234 bytes"."""
    size = max(int(size), 0)
    return f"{size:,}{_SPACE}{'byte' if size == 1 else 'bytes'}"


def size_with_bytes(size: int) -> str:
    """The human size, then the exact count when it says more: "190.7 MiB (199,970,234 bytes)".

    Below 1 KiB the human size already is exact, so it is given once ("608 bytes").
    """
    if max(int(size), 0) < 1024:
        return human_size(size)
    return f"{human_size(size)} ({exact_bytes(size)})"


def when(value: datetime | None) -> str:
    """An aware date-time in the active zone, with the zone named: "30 Nov 2026, 14:05 CET".

    The active zone is the browser's (securefiles.middleware.BrowserTimezoneMiddleware) or UTC.
    None gives "".
    """
    if value is None:
        return ""
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def time_element(value: datetime | None, *, ago: bool = False) -> str:
    """A ``<time>`` element for an aware date-time: its ``datetime`` attribute is ISO 8601
    in the active zone (what the ``date:'c'`` filter gives); its text the exact time with
    the zone (``when``), or with ``ago`` "3 hours ago" (humanize's naturaltime) and the
    exact time as its title. None gives "".

    The lists show such an element on every row: one call converts the time to the zone
    once, where three template filters did it three times (issue 17: the dates were a
    third of rendering a page of 100 rows).
    """
    if value is None:
        return ""
    local = timezone.localtime(value)
    exact = date_format(local, "DATETIME_FORMAT")
    if not ago:
        return format_html('<time datetime="{}">{}</time>', local.isoformat(), exact)
    relative = naturaltime(value)
    html = '<time datetime="{}" title="{}">{}</time>'
    return format_html(html, local.isoformat(), exact, relative)


_KINDS = (
    ("application/pdf", "pdf"),
    ("image/", "image"),
    ("audio/", "audio"),
    ("video/", "video"),
    ("text/", "text"),
    ("application/zip", "archive"),
    ("application/x-7z", "archive"),
    ("application/x-tar", "archive"),
    ("application/gzip", "archive"),
    ("application/vnd.ms-excel", "sheet"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml", "sheet"),
    ("text/csv", "sheet"),
    ("application/msword", "doc"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml", "doc"),
    ("application/vnd.oasis.opendocument.text", "doc"),
)


def file_kind(content_type: str) -> str:
    """pdf, image, audio, video, text, archive, sheet, doc or other."""
    content_type = (content_type or "").lower()
    for prefix, kind in _KINDS:
        if content_type.startswith(prefix):
            return kind
    return "other"


def duration(seconds: int) -> str:
    """A wait or window in seconds as words, to the largest unit ("1 hour", "59 minutes").

    At least one minute is shown, so "try again in 0 minutes" never appears.
    """
    now = timezone.now()
    return timeuntil(now + timedelta(seconds=max(int(seconds), 60)), now=now, depth=1)
