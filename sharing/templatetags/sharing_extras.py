"""Template helpers: a kind of file for its icon, sort links, names, durations, sizes, times."""

from datetime import datetime, timedelta

from django import template
from django.http import QueryDict
from django.utils import timezone
from django.utils.timesince import timeuntil

from audit import events
from sharing import display, names

register = template.Library()

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


@register.filter
def file_kind(content_type: str) -> str:
    """pdf, image, audio, video, text, archive, sheet, doc or other."""
    content_type = (content_type or "").lower()
    for prefix, kind in _KINDS:
        if content_type.startswith(prefix):
            return kind
    return "other"


@register.simple_tag(takes_context=True)
def sort_query(context: template.Context, column: str) -> str:
    """The query string that sorts by ``column``, flipping direction if it already is."""
    current = context.get("sort", "-date")
    wanted = f"-{column}" if current == column else column
    params = QueryDict(mutable=True)
    params["sort"] = wanted
    if context.get("query"):
        params["q"] = context["query"]
    return params.urlencode()


@register.simple_tag(takes_context=True)
def aria_sort(context: template.Context, column: str) -> str:
    current = context.get("sort", "-date")
    if current == column:
        return "ascending"
    if current == f"-{column}":
        return "descending"
    return "none"


@register.simple_tag(takes_context=True)
def page_query(context: template.Context, number: int, param: str = "page") -> str:
    """The query string of page ``number`` of a list (``param`` names which list)."""
    params = QueryDict(mutable=True)
    params[param] = str(number)
    if context.get("sort") and context["sort"] != "-date":
        params["sort"] = context["sort"]
    if context.get("query"):
        params["q"] = context["query"]
    return params.urlencode()


@register.filter
def display_name(name: str) -> str:
    """A file name safe to show: no control or bidi-override characters."""
    return names.display_name(name or "")


@register.filter
def duration(seconds: int) -> str:
    """A wait or window in seconds as words, to the largest unit ("1 hour", "59 minutes").

    At least one minute is shown, so "try again in 0 minutes" never appears.
    """
    now = timezone.now()
    return timeuntil(now + timedelta(seconds=max(int(seconds), 60)), now=now, depth=1)


@register.filter
def event_label(code: str) -> str:
    """An audit event code in words, for pages users read (sharing.events.EVENT_LABELS)."""
    return events.event_label(code)


@register.filter
def human_size(size: int | None) -> str:
    """Bytes as words in binary units ("608 bytes", "190.7 MiB"): sharing.display.human_size."""
    return display.human_size(size or 0)


@register.filter
def size_with_bytes(size: int | None) -> str:
    """ "190.7 MiB (199,970,234 bytes)", or "608 bytes" once: sharing.display.size_with_bytes."""
    return display.size_with_bytes(size or 0)


@register.filter
def exact_bytes(size: int | None) -> str:
    """The exact byte count, "199,970,234 bytes" (for a title beside a human size)."""
    return display.exact_bytes(size or 0)


@register.filter
def when(value: datetime | None) -> str:
    """An aware date-time in the active zone, with the zone named (sharing.display.when)."""
    return display.when(value)


@register.simple_tag
def zone_name() -> str:
    """The IANA name of the zone times are shown in ("Europe/Berlin", "UTC")."""
    return timezone.get_current_timezone_name()
