"""Template helpers: a kind of file for its icon, sort links, names, durations, sizes, times,
and the rows of the file lists."""

import uuid
from datetime import datetime
from functools import lru_cache

from django import template
from django.http import QueryDict
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from audit import events
from audit.models import AuditEntry
from sharing import display, names
from sharing.display import html_format
from sharing.models import Share, ShareLink, StoredFile

register = template.Library()


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
def page_query(
    context: template.Context, number: int, param: str = "page", after: str = "", before: str = ""
) -> str:
    """The query string of page ``number`` of a list (``param`` names which list), with
    the cursor of a Next (``after``) or Previous (``before``) link (sharing.views.paging),
    named after the list: ``after`` for ``page``, ``shared_after`` for ``shared_page``."""
    params = QueryDict(mutable=True)
    params[param] = str(number)
    prefix = param.removesuffix("page")
    if after:
        params[f"{prefix}after"] = after
    if before:
        params[f"{prefix}before"] = before
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
def time_of(value: datetime | None, ago: bool = False) -> str:
    """``<time datetime="ISO 8601">30 Nov 2026, 14:05 CET</time>``, or with ``ago`` the
    relative time ("3 hours ago") titled with the exact one: sharing.display.time_element."""
    return display.time_element(value, ago=ago)


@register.simple_tag
def zone_name() -> str:
    """The IANA name of the zone times are shown in ("Europe/Berlin", "UTC")."""
    return timezone.get_current_timezone_name()


# The same words the views use (sharing.display), under their template names.
register.filter("file_kind", display.file_kind)
register.filter("duration", display.duration)


_URL_PLACEHOLDER = uuid.UUID(int=0)
_ITEM_PLACEHOLDER = 918273645  # an id no URL of ours has in its fixed parts


@lru_cache(maxsize=64)
def _url_around_ids(view: str, script_prefix: str, with_item: bool) -> tuple[str, ...]:
    """The fixed parts of a file URL of ``view`` around the file's id (and, ``with_item``,
    the share's or link's id after it): one reverse() per view and script prefix for the
    life of the process."""
    args: list[object] = [_URL_PLACEHOLDER, _ITEM_PLACEHOLDER] if with_item else [_URL_PLACEHOLDER]
    head, _, tail = reverse(view, args=args).partition(str(_URL_PLACEHOLDER))
    if not with_item:
        return head, tail
    middle, _, tail = tail.partition(str(_ITEM_PLACEHOLDER))
    return head, middle, tail


@register.simple_tag
def file_url(view: str, file_id: uuid.UUID, item_id: int | None = None) -> str:
    """``{% url view file_id %}`` (or ``{% url view file_id item_id %}`` for a view of one
    share or link of the file) without a reverse() per call: a list page has two such
    links a row, and reversing them was a fifth of the page's time (issue 17). Raises
    NoReverseMatch as reverse() does."""
    file_part = str(file_id if isinstance(file_id, uuid.UUID) else uuid.UUID(str(file_id)))
    if item_id is None:
        head, tail = _url_around_ids(view, get_script_prefix(), False)
        return f"{head}{file_part}{tail}"
    head, middle, tail = _url_around_ids(view, get_script_prefix(), True)
    return f"{head}{file_part}{middle}{int(item_id)}{tail}"


# The rows of the file lists, rendered here rather than by a template loop: a page shows
# up to 100 of them, and the template engine's per-node cost (a variable, a filter, a tag
# each) made them most of the page's time (issue 17; bench/page_profile.py measures it).
# Every value is escaped (display.html_format).
_NAME_CELL = (
    '<td><span class="icon icon-{}" aria-hidden="true"></span>'
    '<a href="{}" class="filename">{}</a>{}</td>'
)
_LEGACY = ' <span class="legacy-origin">{}</span>'
_DETAILS_CELL = '<td><a href="{}">{}<span class="visually-hidden"> {}</span></a></td>'


def _name_cell(file: StoredFile, name: str) -> SafeString:
    legacy = (
        html_format(_LEGACY, gettext("Imported from the unauthenticated legacy format"))
        if file.origin == "legacy"
        else SafeString("")
    )
    download = file_url("sharing:download", file.id)
    return html_format(_NAME_CELL, display.file_kind(file.content_type), download, name, legacy)


def _details_cell(file: StoredFile, name: str) -> SafeString:
    return html_format(
        _DETAILS_CELL, file_url("sharing:file_detail", file.id), gettext("Details"), name
    )


@register.simple_tag
def file_row(file: StoredFile) -> SafeString:
    """A row of "Uploaded by me": the name (its kind's icon, a download link, a mark if
    imported from the legacy format), the size, when it was uploaded (time_element, "3
    hours ago"), a link to its page. Every value is escaped (display.html_format)."""
    name = names.display_name(file.name or "")
    return html_format(
        "<tr>{}<td>{}</td><td>{}</td>{}</tr>",
        _name_cell(file, name),
        display.human_size(file.size or 0),
        display.time_element(file.created_at, ago=True),
        _details_cell(file, name),
    )


@register.simple_tag
def shared_row(share: Share) -> SafeString:
    """A row of "Shared with me": as file_row, with the owner's username after the name
    and the time of the share instead of the upload's."""
    file = share.file
    name = names.display_name(file.name or "")
    return html_format(
        "<tr>{}<td>{}</td><td>{}</td><td>{}</td>{}</tr>",
        _name_cell(file, name),
        file.owner.get_username(),
        display.human_size(file.size or 0),
        display.time_element(share.created_at, ago=True),
        _details_cell(file, name),
    )


# The file page's lists (50 shares, 50 links and 50 entries of activity a page), rendered
# here for the same reason as the rows above: a file with a thousand of each took 20 ms
# more to show than one with none (bench/metadata.py, "file page, 1000 links + shares").
_REVOKE_FORM = (
    '<form method="post" action="{}" class="inline">'
    '<input type="hidden" name="csrfmiddlewaretoken" value="{}">\n'
    '        <button type="submit" class="link">{}</button>\n'
    "      </form>"
)


def _revoke_form(context: template.Context, action: str, label: str) -> SafeString:
    """The one-button POST form of a row ({% csrf_token %}'s hidden input, same token)."""
    return html_format(_REVOKE_FORM, action, str(context.get("csrf_token", "")), label)


@register.simple_tag(takes_context=True)
def share_item(context: template.Context, share: Share, file: StoredFile) -> SafeString:
    """An item of the owner's "Who has access": the colleague or group, the last day of
    access (or that it passed), and the button that removes it. Every value escaped."""
    if share.group is not None:
        recipient = gettext("group %(name)s") % {"name": share.group.name}
    else:
        recipient = share.colleague.get_username() if share.colleague else ""
    expiry = SafeString("")
    if share.expires_on:
        day = {"day": share.expires_on.isoformat()}
        expiry = (
            html_format(' <span class="share-expiry">({})</span>', gettext("until %(day)s") % day)
            if getattr(share, "live", True)
            else html_format(
                ' <strong class="share-expired">({})</strong>',
                gettext("expired after %(day)s") % day,
            )
        )
    action = file_url("sharing:share_revoke", file.id, share.id)
    form = _revoke_form(context, action, gettext("Remove access"))
    return html_format("<li>{}{}\n      {}\n    </li>", recipient, expiry, form)


@register.simple_tag(takes_context=True)
def link_row(context: template.Context, link: ShareLink, file: StoredFile) -> SafeString:
    """A row of the owner's "Share links": number, label, expiry, downloads (of the
    limit), password or not, state, and the revoke button while it is not revoked."""
    downloads = str(link.download_count)
    if link.max_downloads:
        downloads += f" / {link.max_downloads}"
    if link.revoked_at:
        state = gettext("revoked")
    elif link.downloads_left == 0:
        state = gettext("used up")
    else:
        state = gettext("active")
    revoke = SafeString("")
    if not link.revoked_at:
        action = file_url("sharing:link_revoke", file.id, link.id)
        revoke = _revoke_form(context, action, gettext("Revoke"))
    return html_format(
        '<tr><td>#{}</td><td class="link-label">{}</td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td></tr>",
        str(link.id),
        link.label or "—",
        display.time_element(link.expires_at),
        downloads,
        gettext("yes") if link.has_password else gettext("no"),
        state,
        revoke,
    )


@register.simple_tag
def activity_row(entry: AuditEntry) -> SafeString:
    """A row of a file's "Activity": when, who, what (events.event_label), from where."""
    return html_format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        display.time_element(entry.created_at),
        entry.actor,
        events.event_label(entry.event),
        entry.ip or "",
    )
