"""Event names as stored in the chain, and the words people read for them."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class Event:
    """Event names as stored; stable, since the MAC covers them."""

    LOGIN = "login.success"
    LOGIN_FAILED = "login.failure"
    LOGIN_LOCKED_OUT = "login.locked_out"
    TWO_FACTOR_ENROLLED = "2fa.enrolled"
    TWO_FACTOR_REMOVED = "2fa.removed"
    SIGNED_UP = "user.signed_up"
    UPLOAD = "file.upload"
    DOWNLOAD = "file.download"
    DELETE = "file.delete"
    ACCESS_DENIED = "file.access_denied"
    TRANSFER = "file.transfer"
    SHARE_GRANTED = "share.granted"
    SHARE_REVOKED = "share.revoked"
    LINK_CREATED = "link.created"
    LINK_REVOKED = "link.revoked"
    LINK_USED_UP = "link.used_up"
    LINK_PASSWORD_DENIED = "link.password_denied"  # noqa: S105 (an event name)
    LINK_THROTTLED = "link.throttled"
    INTEGRITY_ERROR = "file.integrity_error"
    USER_DEACTIVATED = "user.deactivated"
    KEYS_ROTATED = "keys.rotated"
    CONTENT_REENCRYPTED = "keys.reencrypted"
    # What administrators do to users (the acting administrator is the entry's actor).
    TWO_FACTOR_RESET = "2fa.reset"
    USER_CREATED = "user.created"
    USER_CHANGED = "user.changed"
    USER_DELETED = "user.deleted"
    USER_PASSWORD_RESET_SENT = "user.password_reset_sent"  # noqa: S105 (an event name)
    SHARE_LOOKUP_THROTTLED = "share.lookup_throttled"
    # Resumable (tus) uploads before they are files: file_id is the upload's id, which the
    # file keeps once complete (then audited as file.upload).
    UPLOAD_STARTED = "upload.started"
    UPLOAD_CANCELLED = "upload.cancelled"
    UPLOAD_EXPIRED = "upload.expired"
    # Personal access tokens (the HTTP API): detail names the token by its public prefix.
    TOKEN_CREATED = "token.created"  # noqa: S105 (an event name)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 (an event name)
    # Teams (Django's auth groups) as administrators change them.
    GROUP_CREATED = "group.created"
    GROUP_CHANGED = "group.changed"
    GROUP_DELETED = "group.deleted"
    INVITATION_SENT = "user.invitation_sent"
    INVITATION_ACCEPTED = "user.invitation_accepted"
    PASSKEY_ADDED = "passkey.added"
    PASSKEY_REMOVED = "passkey.removed"
    PASSKEY_COUNTER_REGRESSION = "passkey.counter_regression"
    SSO_UNLINKED = "user.sso_unlinked"
    # A file refused because clamd found malware in it (never stored): file_id is the id
    # it would have had, detail "signature=<name> size=<bytes>".
    MALWARE_REFUSED = "file.malware_refused"
    # File requests (filerequests): detail names the request as "request=<id>".
    REQUEST_CREATED = "request.created"
    REQUEST_REVOKED = "request.revoked"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_FILE_RECEIVED = "request.file_received"
    REQUEST_PASSWORD_DENIED = "request.password_denied"  # noqa: S105 (an event name)
    REQUEST_THROTTLED = "request.throttled"


# What people read for each event code, wherever events are shown to users. The admin and
# the CSV export keep the codes: they are what the MAC covers and what scripts match on.
EVENT_LABELS: dict[str, str | Promise] = {  # the lazy labels are Promises
    Event.LOGIN: _("Logged in"),
    Event.LOGIN_FAILED: _("Failed login"),
    Event.LOGIN_LOCKED_OUT: _("Login locked out"),
    Event.TWO_FACTOR_ENROLLED: _("Second factor enrolled"),
    Event.TWO_FACTOR_REMOVED: _("Second factor removed"),
    Event.SIGNED_UP: _("Signed up"),
    Event.UPLOAD: _("Uploaded"),
    Event.DOWNLOAD: _("Downloaded"),
    Event.DELETE: _("Deleted"),
    Event.ACCESS_DENIED: _("Access refused"),
    Event.TRANSFER: _("Ownership transferred"),
    Event.SHARE_GRANTED: _("Shared with a colleague"),
    Event.SHARE_REVOKED: _("Colleague's access removed"),
    Event.LINK_CREATED: _("Share link created"),
    Event.LINK_REVOKED: _("Share link revoked"),
    Event.LINK_USED_UP: _("Share link used up"),
    Event.LINK_PASSWORD_DENIED: _("Wrong share link password"),
    Event.LINK_THROTTLED: _("Share link locked after wrong passwords"),
    Event.INTEGRITY_ERROR: _("Stored copy failed verification"),
    Event.USER_DEACTIVATED: _("Account disabled"),
    Event.KEYS_ROTATED: _("Encryption key rotated"),
    Event.CONTENT_REENCRYPTED: _("Content re-encrypted"),
    Event.TWO_FACTOR_RESET: _("Second factor reset by an administrator"),
    Event.USER_CREATED: _("Account created"),
    Event.USER_CHANGED: _("Account changed"),
    Event.USER_DELETED: _("Account deleted"),
    Event.USER_PASSWORD_RESET_SENT: _("Password reset e-mail sent"),
    Event.SHARE_LOOKUP_THROTTLED: _("Sharing by name paused after unknown names"),
    Event.UPLOAD_STARTED: _("Resumable upload started"),
    Event.UPLOAD_CANCELLED: _("Unfinished upload cancelled"),
    Event.UPLOAD_EXPIRED: _("Unfinished upload expired and removed"),
    Event.TOKEN_CREATED: _("Access token created"),
    Event.TOKEN_REVOKED: _("Access token revoked"),
    Event.GROUP_CREATED: _("Group created"),
    Event.GROUP_CHANGED: _("Group changed"),
    Event.GROUP_DELETED: _("Group deleted"),
    Event.INVITATION_SENT: _("Invitation sent"),
    Event.INVITATION_ACCEPTED: _("Invitation accepted"),
    Event.PASSKEY_ADDED: _("Passkey registered"),
    Event.PASSKEY_REMOVED: _("Passkey removed"),
    Event.PASSKEY_COUNTER_REGRESSION: _("Passkey refused: its counter went backwards"),
    Event.SSO_UNLINKED: _("Single sign-on identity unlinked"),
    Event.MALWARE_REFUSED: _("File refused: malware found"),
    Event.REQUEST_CREATED: _("File request created"),
    Event.REQUEST_REVOKED: _("File request revoked"),
    Event.REQUEST_EXPIRED: _("File request expired"),
    Event.REQUEST_FILE_RECEIVED: _("File received through a file request"),
    Event.REQUEST_PASSWORD_DENIED: _("Wrong file request password"),
    Event.REQUEST_THROTTLED: _("File request locked after wrong passwords"),
}


def event_label(code: str) -> str:
    """The human label of an event code (e.g. "link.password_denied" -> "Wrong share link
    password"); an unknown code is returned as it is, so nothing is ever hidden."""
    return str(EVENT_LABELS.get(code, code))
