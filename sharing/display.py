"""How sizes are shown to people: one convention for pages, the admin, e-mails and upload.js.

Binary units with their IEC names: 1 KiB = 1024 bytes, 1 MiB = 1024 KiB, ... The limits
in the settings (MAX_UPLOAD_MB, USER_QUOTA_MB) are MiB too, so a limit and the sizes
measured against it read alike. static/js/upload.js (humanSize) follows the same rule.
"""

from datetime import datetime, timedelta
from functools import lru_cache
from html import escape

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.dateformat import DateFormat, re_escaped, re_formatchars
from django.utils.formats import get_format
from django.utils.safestring import SafeString
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
    return _datetime_text(timezone.localtime(value))


@lru_cache(maxsize=16)
def _format_pieces(format_string: str) -> tuple[tuple[str, bool], ...]:
    """``format_string`` (Django's date format syntax) split once into (piece, is a format
    character): what django.utils.dateformat.Formatter.format splits on every call."""
    pieces = []
    for index, piece in enumerate(re_formatchars.split(format_string)):
        if index % 2:
            pieces.append((piece, True))
        elif piece:
            pieces.append((re_escaped.sub(r"\1", piece), False))
    return tuple(pieces)


def _datetime_text(local: datetime) -> str:
    """``date_format(local, "DATETIME_FORMAT")``, the same text, with the format split once
    per process instead of once per call (a list page formats 100 times: 38 µs each by
    date_format, 15 µs here)."""
    formatter = DateFormat(local)
    pieces = _format_pieces(str(get_format("DATETIME_FORMAT")))
    return "".join(str(getattr(formatter, piece)()) if code else piece for piece, code in pieces)


def html_format(template: str, *values: str) -> SafeString:
    """``template`` (``str.format`` syntax, trusted markup) with ``values`` put in, each
    escaped unless it is already a SafeString: django.utils.html.format_html's contract,
    for plain strings only. A list page fills hundreds of such pieces, and format_html's
    check of every argument for a lazy translation cost a fifth of a row; this escapes with
    html.escape, what django.utils.html.escape itself calls."""
    escaped = (value if isinstance(value, SafeString) else escape(value) for value in values)
    # Safe: the template is our markup and every value was escaped just above.
    return SafeString(template.format(*escaped))  # nosec B703


def time_element(value: datetime | None, *, ago: bool = False) -> SafeString:
    """A ``<time>`` element for an aware date-time: its ``datetime`` attribute is ISO 8601
    in the active zone (what the ``date:'c'`` filter gives); its text the exact time with
    the zone (``when``), or with ``ago`` "3 hours ago" (humanize's naturaltime) and the
    exact time as its title. None gives "".

    The lists show such an element on every row: one call converts the time to the zone
    once, where three template filters did it three times (issue 17: the dates were a
    third of rendering a page of 100 rows).
    """
    if value is None:
        return SafeString("")
    local = timezone.localtime(value)
    iso, exact = local.isoformat(), _datetime_text(local)
    if not ago:
        return html_format('<time datetime="{}">{}</time>', iso, exact)
    relative = str(naturaltime(value))
    return html_format('<time datetime="{}" title="{}">{}</time>', iso, exact, relative)


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
